// The window of a long conversation is read by key range: the database touches the window's
// rows, not the conversation's. Checked on the library's own SQL text (src/sql.cpp is compiled
// into this test) with the database's EXPLAIN.
#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

#include <soci/postgresql/soci-postgresql.h>
#include <soci/soci.h>
#include <soci/sqlite3/soci-sqlite3.h>

#include "sql.hpp"
#include "support.hpp"

using namespace convstate;

namespace {

// The plan of `sql` bound to the given values (as text: both databases convert them to the
// column's type), one line per plan row.
// A write statement is explained inside a transaction that is rolled back.
std::string explain(const cstest::FreshDb& raw, const std::string& sql, const std::vector<std::string>& args,
                    bool rollback = false) {
    soci::session s(raw.backend, raw.connect);
    if (rollback) s << "BEGIN";
    const bool pg = cstest::is_postgres();
    soci::statement st(s);
    for (const auto& a : args) st.exchange(soci::use(a));
    std::string line, plan;
    long long id = 0, parent = 0, unused = 0;
    if (pg) {
        st.exchange(soci::into(line));
    } else {
        st.exchange(soci::into(id));
        st.exchange(soci::into(parent));
        st.exchange(soci::into(unused));
        st.exchange(soci::into(line));
    }
    st.alloc();
    st.prepare((pg ? "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " : "EXPLAIN QUERY PLAN ") + sql);
    st.define_and_bind();
    if (st.execute(true)) {
        do plan += line + "\n";
        while (st.fetch());
    }
    if (rollback) s << "ROLLBACK";
    return plan;
}

// MariaDB's ANALYZE (the statement run, its plan annotated): one line per table read,
// "table=… type=… key=… r_rows=…" (r_rows: the rows it really read, per loop).
std::string explain_mariadb(const cstest::FreshDb& raw, const std::string& sql, const std::vector<std::string>& args) {
    soci::session s(raw.backend, raw.connect);
    soci::statement st(s);
    for (const auto& a : args) st.exchange(soci::use(a));
    soci::row r;
    st.exchange(soci::into(r));
    st.alloc();
    st.prepare("ANALYZE " + sql);
    st.define_and_bind();
    std::string plan;
    auto text = [&](const std::string& column) -> std::string {
        for (std::size_t i = 0; i < r.size(); ++i) {
            if (r.get_properties(i).get_name() != column) continue;
            if (r.get_indicator(i) == soci::i_null) return "NULL";
            switch (r.get_properties(i).get_data_type()) {
            case soci::dt_string: return r.get<std::string>(i);
            case soci::dt_long_long: return std::to_string(r.get<long long>(i));
            case soci::dt_unsigned_long_long: return std::to_string(r.get<unsigned long long>(i));
            case soci::dt_integer: return std::to_string(r.get<int>(i));
            case soci::dt_double: return std::to_string(static_cast<long long>(r.get<double>(i)));
            default: return "?";
            }
        }
        return "";
    };
    if (st.execute(true)) {
        do plan += "table=" + text("table") + " type=" + text("type") + " key=" + text("key") + " r_rows=" + text("r_rows") + "\n";
        while (st.fetch());
    }
    return plan;
}

// Every table read in a MariaDB plan (the messages, under their aliases too; one-row derived
// tables and constant lookups aside) goes through the primary key by range or reference, never
// type=ALL (a full scan), and reads few rows.
void check_mariadb_plan(const std::string& plan) {
    CAPTURE(plan);
    int reads = 0;
    for (std::size_t at = 0; at < plan.size();) {
        const std::size_t end = plan.find('\n', at);
        const std::string line = plan.substr(at, end - at);
        at = end + 1;
        if (line.find(" type=NULL ") != std::string::npos || line.find(" type=system ") != std::string::npos ||
            line.find(" type=const ") != std::string::npos)
            continue;
        ++reads;
        CAPTURE(line);
        CHECK(line.find(" type=ALL ") == std::string::npos);
        CHECK(line.find(" key=PRIMARY ") != std::string::npos);
        const std::size_t rows = line.find(" r_rows=");
        REQUIRE(rows != std::string::npos);
        CHECK(std::stoll(line.substr(rows + 8)) <= 100);
    }
    CHECK(reads >= 1);
}

} // namespace

TEST_CASE("window: the last 50 of a 100,000-message conversation are read by key range") {
    // Its bulk load uses a volatile function, which Citus refuses in a distributed INSERT, and
    // it reads a single server's plans: on Citus, tests/citus_test.sh checks the router plans.
    if (cstest::is_citus()) return;
    cstest::FreshDb raw;
    Database db = cstest::open_fresh(&raw);
    const Conversation c = ConversationStore(db).create("big");
    const std::string series = cstest::is_postgres() ? "SELECT g FROM generate_series(1, 100000) AS g"
        : cstest::is_mariadb()                       ? "SELECT seq AS g FROM seq_1_to_100000"
        : "WITH RECURSIVE n(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM n WHERE g < 100000) SELECT g FROM n";
    cstest::exec(raw, "INSERT INTO convstate_messages (user_id, conversation_id, seq, role, content, metadata_json, created_at)"
                      " SELECT 'big', '" + c.id + "', g, CASE WHEN g % 2 = 1 THEN 'user' ELSE 'assistant' END,"
                      " " + std::string(cstest::is_mariadb() ? "CONCAT('message ', g)" : "'message ' || g") +
                      ", '{}', 0 FROM (" + series + ") AS s");
    cstest::exec(raw, "UPDATE convstate_conversations SET last_seq = 100000 WHERE id = '" + c.id + "'");
    // Another conversation of the same user, so the key prefix is not unique to ours.
    const Conversation other = ConversationStore(db).create("big");
    MessageRepository(db).append("big", other.id, {.role = Role::user, .content = "other"});

    ChatOrchestrator chat(db);
    const std::vector<Message> window = chat.window("big", c.id, HistoryWindow::last(50));
    REQUIRE(window.size() == 50);
    CHECK(window.front().seq == 99951);
    CHECK(window.back().seq == 100000);
    CHECK(window.back().content == "message 100000");
    const std::vector<Message> last = MessageRepository(db).load_last("big", c.id, 50);
    REQUIRE(last.size() == 50);
    CHECK(last.front().seq == 99951);

    const detail::SqlText& sql = detail::sql_for(db.dialect());
    for (int pass = 0; pass < 2; ++pass) { // without statistics, then with them
        if (pass == 1) cstest::exec(raw, cstest::is_mariadb() ? "ANALYZE TABLE convstate_messages" : "ANALYZE");
        CAPTURE(pass);
        // The window's reads: its range, the leading-system-message probe, the last n.
        const std::vector<std::pair<const std::string*, std::vector<std::string>>> reads{
            {&sql.msg_range, {"big", c.id, "99950", "100000"}},
            {&sql.msg_system_prefix, {"100000", "big", c.id, "100000", "big", c.id}},
            {&sql.msg_last, {"big", c.id, "big", c.id, "50"}}};
        if (cstest::is_mariadb()) {
            for (const auto& [statement, args] : reads) check_mariadb_plan(explain_mariadb(raw, *statement, args));
            continue;
        }
        const std::string range = explain(raw, *reads[0].first, reads[0].second);
        const std::string prefix = explain(raw, *reads[1].first, reads[1].second);
        const std::string last_n = explain(raw, *reads[2].first, reads[2].second);
        MESSAGE("plan of the window read on " << std::string(cstest::backend_name()) << ":\n" << range);
        for (const std::string& plan : {range, prefix, last_n}) {
            CAPTURE(plan);
            if (cstest::is_postgres()) {
                // (A two-row conversations table may be scanned; the messages table never.)
                CHECK(plan.find("Seq Scan on convstate_messages") == std::string::npos);
                CHECK(plan.find("Index") != std::string::npos);
            } else {
                CHECK(plan.find("SCAN convstate_messages") == std::string::npos);
                CHECK(plan.find("SEARCH convstate_messages") != std::string::npos);
            }
        }
        if (cstest::is_postgres()) {
            // The turn's first statement reads its window by key range too, even before ANALYZE.
            const std::string turn = explain(raw, sql.turn_begin,
                {"1", "big", c.id, "1", "big", c.id, "hello", "", "{}", "k-plan", "1", "owner", "1", "big", c.id, "50", "1", "big",
                 c.id, "1", "big", c.id, "16", "50", "big", c.id, "big", c.id, "1", "big", c.id}, true);
            CAPTURE(turn);
            CHECK(turn.find("Seq Scan on convstate_messages") == std::string::npos);
            CHECK(turn.find("Rows Removed by Join Filter") == std::string::npos);
            CHECK(turn.find("(actual rows=49 loops=1)") != std::string::npos); // 49 old + the new one
            // The index scan returned exactly the window's rows.
            CHECK(range.find("Index Cond: ((user_id = 'big'::text) AND (conversation_id = '" + c.id +
                             "'::text) AND (seq > '99950'::bigint) AND (seq <= '100000'::bigint))") != std::string::npos);
            CHECK(range.find("(actual rows=50 loops=1)") != std::string::npos);
            CHECK(last_n.find("(actual rows=50 loops=1)") != std::string::npos);
            // The leading-system-message probe stops at the first message.
            CHECK(prefix.find("rows=100000") == std::string::npos);
        } else {
            CHECK(range.find("seq>? AND seq<?") != std::string::npos);
        }
    }
}
