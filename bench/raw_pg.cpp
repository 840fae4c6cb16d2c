// The PostgreSQL floor, "2 round trips per turn": each statement PQprepare'd once per
// connection and run with PQexecPrepared, each in autocommit (one commit = one WAL flush each).
//
//   1. steps 1-3 in ONE statement: a CTE that bumps last_seq under the conversation's row lock
//      (UPDATE ... RETURNING last_seq), inserts the user message with that seq, and returns the
//      window read by the bounded key range seq > last_seq - N (plus the inserted row);
//      the full-history variant reads every earlier seq.
//   2. step 5 in ONE statement: UPDATE ... RETURNING last_seq, INSERT the reply.
//
// A creating turn inserts the conversation and the first message in one statement.
// In READ COMMITTED a statement that waited on the row lock gets the right new seq but reads
// history from its older snapshot: a window with a hole below the new seq is read again
// (one more round trip, counted).

#include <libpq-fe.h>

#include <charconv>
#include <cstdlib>
#include <utility>

#include <fmt/format.h>

#include "bench.hpp"

namespace bench {
namespace {

constexpr Oid text_oid = 25, int8_oid = 20;

/** A result that is freed. */
class Result {
public:
    explicit Result(PGresult* r) : r_(r) {}
    ~Result() { PQclear(r_); }
    Result(Result&& o) noexcept : r_(std::exchange(o.r_, nullptr)) {}
    Result(const Result&) = delete;
    Result& operator=(const Result&) = delete;
    Result& operator=(Result&&) = delete;
    int rows() const { return PQntuples(r_); }
    long long int64(int row, int col) const { return std::strtoll(PQgetvalue(r_, row, col), nullptr, 10); }
    std::string text(int row, int col) const {
        return std::string(PQgetvalue(r_, row, col), static_cast<std::size_t>(PQgetlength(r_, row, col)));
    }
    Row row(int i) const { return Row{int64(i, 0), text(i, 1), text(i, 2), text(i, 3), text(i, 4), text(i, 5)}; }
    PGresult* get() const { return r_; }

private:
    PGresult* r_;
};

PGconn* connect(const std::string& url) {
    PGconn* c = PQconnectdb(url.c_str());
    if (PQstatus(c) != CONNECTION_OK) {
        std::string err = PQerrorMessage(c);
        PQfinish(c);
        fail("raw postgres: cannot connect: " + err);
    }
    return c;
}

void check(PGconn* c, const Result& r, const std::string& what) {
    const auto st = PQresultStatus(r.get());
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail(fmt::format("raw postgres: {}: {}", what, PQerrorMessage(c)));
}

// Column list: the same message columns on every read.
#define RAW_COLS "seq, role, content, name, tool_calls_json, tool_call_id"

// $1 user_id, $2 conversation id, $3 now (us), $4 content.
const char* const sql_create =
    "WITH c AS (INSERT INTO raw_conversations (user_id, id, title, metadata_json, last_seq, created_at, updated_at)"
    " VALUES ($1, $2, '', '{}', 1, $3, $3) RETURNING last_seq)"
    " INSERT INTO raw_messages (user_id, conversation_id, seq, role, content, metadata_json, created_at)"
    " SELECT $1, $2, last_seq, 'user', $4, '{}', $3 FROM c RETURNING " RAW_COLS;
// ... $5 window size N: the window is (last_seq - N, last_seq]; the SELECT cannot see the row
// the same statement inserts, so that row comes back through the INSERT's RETURNING.
const char* const sql_user_last =
    "WITH c AS (UPDATE raw_conversations SET last_seq = last_seq + 1, updated_at = $3"
    " WHERE user_id = $1 AND id = $2 RETURNING last_seq),"
    " m AS (INSERT INTO raw_messages (user_id, conversation_id, seq, role, content, metadata_json, created_at)"
    " SELECT $1, $2, last_seq, 'user', $4, '{}', $3 FROM c RETURNING " RAW_COLS ")"
    " SELECT " RAW_COLS " FROM raw_messages WHERE user_id = $1 AND conversation_id = $2"
    " AND seq > (SELECT last_seq FROM c) - $5 AND seq < (SELECT last_seq FROM c)"
    " UNION ALL SELECT " RAW_COLS " FROM m ORDER BY seq";
const char* const sql_user_full =
    "WITH c AS (UPDATE raw_conversations SET last_seq = last_seq + 1, updated_at = $3"
    " WHERE user_id = $1 AND id = $2 RETURNING last_seq),"
    " m AS (INSERT INTO raw_messages (user_id, conversation_id, seq, role, content, metadata_json, created_at)"
    " SELECT $1, $2, last_seq, 'user', $4, '{}', $3 FROM c RETURNING " RAW_COLS ")"
    " SELECT " RAW_COLS " FROM raw_messages WHERE user_id = $1 AND conversation_id = $2"
    " AND seq < (SELECT last_seq FROM c)"
    " UNION ALL SELECT " RAW_COLS " FROM m ORDER BY seq";
const char* const sql_reply =
    "WITH c AS (UPDATE raw_conversations SET last_seq = last_seq + 1, updated_at = $3"
    " WHERE user_id = $1 AND id = $2 RETURNING last_seq)"
    " INSERT INTO raw_messages (user_id, conversation_id, seq, role, content, metadata_json, created_at)"
    " SELECT $1, $2, last_seq, 'assistant', $4, '{}', $3 FROM c RETURNING seq";
// $3 lo, $4 hi: (lo, hi]
const char* const sql_range =
    "SELECT " RAW_COLS " FROM raw_messages WHERE user_id = $1 AND conversation_id = $2"
    " AND seq > $3 AND seq <= $4 ORDER BY seq";
// $3 n
const char* const sql_last =
    "SELECT " RAW_COLS " FROM raw_messages WHERE user_id = $1 AND conversation_id = $2"
    " AND seq > (SELECT last_seq FROM raw_conversations WHERE user_id = $1 AND id = $2) - $3 ORDER BY seq";

// One connection of a client: its prepared statements, each execution counted.
class PgConnection {
public:
    PgConnection(const std::string& url, std::atomic<std::uint64_t>& statements)
        : c_(connect(url)), statements_(statements) {}
    ~PgConnection() { PQfinish(c_); }
    PgConnection(const PgConnection&) = delete;
    PgConnection& operator=(const PgConnection&) = delete;

    void prepare(const char* name, const char* sql, int n, const Oid* types) {
        Result r(PQprepare(c_, name, sql, n, types));
        check(c_, r, std::string("prepare ") + name);
    }
    Result exec(const char* name, int n, const char* const* params) {
        ++statements_;
        Result r(PQexecPrepared(c_, name, n, params, nullptr, nullptr, 0));
        check(c_, r, name);
        return r;
    }

private:
    PGconn* c_;
    std::atomic<std::uint64_t>& statements_;
};

class RawPgClient final : public Client {
public:
    RawPgClient(const std::string& url, Window w, std::atomic<std::uint64_t>& statements,
                std::atomic<std::uint64_t>& rereads)
        : pg_(url, statements), w_(w), rereads_(rereads) {
        const Oid create_t[] = {text_oid, text_oid, int8_oid, text_oid};
        const Oid user_t[] = {text_oid, text_oid, int8_oid, text_oid, int8_oid};
        const Oid range_t[] = {text_oid, text_oid, int8_oid, int8_oid};
        const Oid last_t[] = {text_oid, text_oid, int8_oid};
        pg_.prepare("create", sql_create, 4, create_t);
        pg_.prepare("user_last", sql_user_last, 5, user_t);
        pg_.prepare("user_full", sql_user_full, 4, user_t);
        pg_.prepare("reply", sql_reply, 4, create_t);
        pg_.prepare("range", sql_range, 4, range_t);
        pg_.prepare("last", sql_last, 3, last_t);
    }

    TurnOut turn(const std::string& user, const std::string& conversation_id, const std::string& text) override {
        TurnOut out;
        out.conversation_id = conversation_id.empty() ? random_uuid() : conversation_id;
        const std::string& id = out.conversation_id;
        const std::string now = std::to_string(now_us()), n = std::to_string(w_.n);
        std::vector<Row> window;
        {
            // Steps 1-3: one statement.
            const char* params[] = {user.c_str(), id.c_str(), now.c_str(), text.c_str(), n.c_str()};
            const char* stmt = conversation_id.empty() ? "create" : w_.all ? "user_full" : "user_last";
            Result r = pg_.exec(stmt, conversation_id.empty() || w_.all ? 4 : 5, params);
            if (r.rows() == 0) fail("raw postgres: conversation " + id + " not found");
            window.reserve(static_cast<std::size_t>(r.rows()));
            for (int i = 0; i < r.rows(); ++i) window.push_back(r.row(i));
        }
        out.user_seq = window.back().seq;
        const long long expect = w_.all ? out.user_seq : std::min<long long>(w_.n, out.user_seq);
        if (static_cast<long long>(window.size()) < expect) {
            // We waited on the row lock: a concurrent writer's messages are missing from our
            // snapshot. Read the window again (a new statement, a new snapshot).
            ++rereads_;
            const std::string lo = std::to_string(out.user_seq - expect), hi = std::to_string(out.user_seq);
            const char* params[] = {user.c_str(), id.c_str(), lo.c_str(), hi.c_str()};
            Result r = pg_.exec("range", 4, params);
            window.clear();
            for (int i = 0; i < r.rows(); ++i) window.push_back(r.row(i));
        }
        // Step 4: the stub agent.
        check_window(w_, window, text, "raw");
        const std::string& reply = reply_text();
        {
            // Step 5: one statement.
            const std::string now2 = std::to_string(now_us());
            const char* params[] = {user.c_str(), id.c_str(), now2.c_str(), reply.c_str()};
            Result r = pg_.exec("reply", 4, params);
            if (r.rows() != 1) fail("raw postgres: conversation " + id + " vanished");
            out.reply_seq = r.int64(0, 0);
        }
        return out;
    }

    void load_last(const std::string& user, const std::string& conversation_id, int n, long long last_seq) override {
        const std::string ns = std::to_string(n);
        const char* params[] = {user.c_str(), conversation_id.c_str(), ns.c_str()};
        Result r = pg_.exec("last", 3, params);
        std::vector<Row> rows;
        rows.reserve(static_cast<std::size_t>(r.rows()));
        for (int i = 0; i < r.rows(); ++i) rows.push_back(r.row(i));
        if (static_cast<long long>(rows.size()) != n || rows.front().seq != last_seq - n + 1 || rows.back().seq != last_seq)
            fail(fmt::format("raw postgres: load_last({}) returned {} rows", n, rows.size()));
    }

private:

    PgConnection pg_;
    Window w_;
    std::atomic<std::uint64_t>& rereads_;
};

// The classic flow, for reference (S6): what a chat endpoint written without convstate
// typically sends — separate autocommit statements, 6 round trips and 4 commits per turn: load
// the conversation, load its last messages, insert the user message (seq = MAX + 1), update the
// conversation, insert the reply, update the conversation. One sequential client only (MAX + 1
// is not safe under concurrency, which is part of why it is the classic flow and not the floor).
const char* const sql_classic_conv = "SELECT id FROM raw_conversations WHERE user_id = $1 AND id = $2";
const char* const sql_classic_create =
    "INSERT INTO raw_conversations (user_id, id, title, metadata_json, last_seq, created_at, updated_at)"
    " VALUES ($1, $2, '', '{}', 0, $3, $3)";
// $3 the number of earlier messages to load
const char* const sql_classic_history =
    "SELECT " RAW_COLS " FROM (SELECT " RAW_COLS " FROM raw_messages WHERE user_id = $1 AND conversation_id = $2"
    " ORDER BY seq DESC LIMIT $3) h ORDER BY seq";
// $3 now, $4 role, $5 content
const char* const sql_classic_insert =
    "INSERT INTO raw_messages (user_id, conversation_id, seq, role, content, metadata_json, created_at)"
    " SELECT $1, $2, COALESCE(MAX(seq), 0) + 1, $4, $5, '{}', $3 FROM raw_messages"
    " WHERE user_id = $1 AND conversation_id = $2 RETURNING " RAW_COLS;
// $3 last_seq, $4 now
const char* const sql_classic_touch =
    "UPDATE raw_conversations SET last_seq = $3, updated_at = $4 WHERE user_id = $1 AND id = $2";

class ClassicPgClient final : public Client {
public:
    ClassicPgClient(const std::string& url, Window w, std::atomic<std::uint64_t>& statements)
        : pg_(url, statements), w_(w) {
        const Oid two[] = {text_oid, text_oid}, create_t[] = {text_oid, text_oid, int8_oid};
        const Oid history_t[] = {text_oid, text_oid, int8_oid};
        const Oid insert_t[] = {text_oid, text_oid, int8_oid, text_oid, text_oid};
        const Oid touch_t[] = {text_oid, text_oid, int8_oid, int8_oid};
        pg_.prepare("conv", sql_classic_conv, 2, two);
        pg_.prepare("create", sql_classic_create, 3, create_t);
        pg_.prepare("history", sql_classic_history, 3, history_t);
        pg_.prepare("insert", sql_classic_insert, 5, insert_t);
        pg_.prepare("touch", sql_classic_touch, 4, touch_t);
    }

    TurnOut turn(const std::string& user, const std::string& conversation_id, const std::string& text) override {
        TurnOut out;
        out.conversation_id = conversation_id.empty() ? random_uuid() : conversation_id;
        const std::string& id = out.conversation_id;
        const std::string now = std::to_string(now_us());
        if (conversation_id.empty()) {
            const char* params[] = {user.c_str(), id.c_str(), now.c_str()};
            pg_.exec("create", 3, params);
        } else {
            const char* params[] = {user.c_str(), id.c_str()};
            if (pg_.exec("conv", 2, params).rows() != 1) fail("classic postgres: conversation " + id + " not found");
        }
        std::vector<Row> window;
        {
            const std::string n = std::to_string(w_.all ? 1'000'000'000 : w_.n - 1);
            const char* params[] = {user.c_str(), id.c_str(), n.c_str()};
            Result r = pg_.exec("history", 3, params);
            for (int i = 0; i < r.rows(); ++i) window.push_back(r.row(i));
        }
        out.user_seq = insert(user, id, "user", text, &window);
        check_window(w_, window, text, "classic");
        out.reply_seq = insert(user, id, "assistant", reply_text(), nullptr);
        return out;
    }

    void load_last(const std::string&, const std::string&, int, long long) override {
        fail("classic postgres: S5 is not run for the classic flow");
    }

private:
    // INSERT then UPDATE the conversation: two round trips, two commits. Returns the seq.
    long long insert(const std::string& user, const std::string& id, const char* role, const std::string& content,
                     std::vector<Row>* window) {
        const std::string now = std::to_string(now_us());
        const char* params[] = {user.c_str(), id.c_str(), now.c_str(), role, content.c_str()};
        Result r = pg_.exec("insert", 5, params);
        const long long seq = r.int64(0, 0);
        if (window) window->push_back(r.row(0));
        const std::string last = std::to_string(seq);
        const char* touch[] = {user.c_str(), id.c_str(), last.c_str(), now.c_str()};
        pg_.exec("touch", 4, touch);
        return seq;
    }

    PgConnection pg_;
    Window w_;
};

class RawPg final : public Impl {
public:
    RawPg(std::string url, bool classic) : url_(std::move(url)), classic_(classic) {
        PgAdmin admin(url_);
        for (const std::string& ddl : raw_schema()) admin.exec(ddl);
    }
    const char* name() const override { return classic_ ? "classic" : "raw"; }
    std::unique_ptr<Client> client(const Window& w) override {
        if (classic_) return std::make_unique<ClassicPgClient>(url_, w, statements_);
        return std::make_unique<RawPgClient>(url_, w, statements_, rereads_);
    }
    std::uint64_t round_trips() const override { return statements_.load(); }
    std::vector<Row> load_all(const std::string& user, const std::string& id) override {
        PGconn* c = connect(url_);
        const char* params[] = {user.c_str(), id.c_str()};
        Result r(PQexecParams(c, "SELECT " RAW_COLS " FROM raw_messages WHERE user_id = $1 AND conversation_id = $2"
                                 " ORDER BY seq", 2, nullptr, params, nullptr, nullptr, 0));
        check(c, r, "load_all");
        std::vector<Row> rows;
        for (int i = 0; i < r.rows(); ++i) rows.push_back(r.row(i));
        PQfinish(c);
        return rows;
    }
    std::string create_conversation(const std::string& user) override {
        PGconn* c = connect(url_);
        const std::string id = random_uuid(), now = std::to_string(now_us());
        const char* params[] = {user.c_str(), id.c_str(), now.c_str()};
        Result r(PQexecParams(c, "INSERT INTO raw_conversations (user_id, id, title, metadata_json, last_seq,"
                                 " created_at, updated_at) VALUES ($1, $2, '', '{}', 0, $3::bigint, $3::bigint)",
                              3, nullptr, params, nullptr, nullptr, 0));
        check(c, r, "create_conversation");
        PQfinish(c);
        return id;
    }

private:
    std::string url_;
    bool classic_;
    std::atomic<std::uint64_t> statements_{0};
    std::atomic<std::uint64_t> rereads_{0};
};

} // namespace

std::unique_ptr<Impl> make_raw_pg(const std::string& url) { return std::make_unique<RawPg>(url, false); }
std::unique_ptr<Impl> make_classic_pg(const std::string& url) { return std::make_unique<RawPg>(url, true); }

// --- harness helpers ----------------------------------------------------------------------

PgAdmin::PgAdmin(const std::string& url) : conn_(connect(url)) {
    exec("SET client_min_messages = warning");
}
PgAdmin::~PgAdmin() { PQfinish(static_cast<PGconn*>(conn_)); }

bool PgAdmin::try_exec(const std::string& sql, std::string* error) {
    auto* c = static_cast<PGconn*>(conn_);
    Result r(PQexec(c, sql.c_str()));
    const auto st = PQresultStatus(r.get());
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return true;
    if (error) *error = PQerrorMessage(c);
    return false;
}

void PgAdmin::exec(const std::string& sql) {
    std::string err;
    if (!try_exec(sql, &err)) fail(fmt::format("postgres: {}: {}", sql, err));
}

std::vector<std::vector<std::string>> PgAdmin::query(const std::string& sql) {
    auto* c = static_cast<PGconn*>(conn_);
    Result r(PQexec(c, sql.c_str()));
    check(c, r, sql);
    std::vector<std::vector<std::string>> out;
    for (int i = 0; i < r.rows(); ++i) {
        std::vector<std::string> row;
        for (int j = 0; j < PQnfields(r.get()); ++j) row.push_back(r.text(i, j));
        out.push_back(std::move(row));
    }
    return out;
}

std::string pg_url_with_db(const std::string& url, const std::string& db) {
    const auto scheme = url.find("://");
    if (scheme == std::string::npos) fail("--pg-url must be a postgresql:// URL, got: " + url);
    const auto q = url.find('?', scheme + 3);
    const std::string head = url.substr(0, q), tail = q == std::string::npos ? "" : url.substr(q);
    const auto slash = head.find('/', scheme + 3);
    return (slash == std::string::npos ? head : head.substr(0, slash)) + "/" + db + tail;
}

// The authority of a postgresql:// URL: [user@]host[:port], the user info ending at the last '@'.
namespace {
std::pair<std::size_t, std::size_t> host_span(const std::string& url) {
    const auto scheme = url.find("://");
    if (scheme == std::string::npos) fail("--pg-url must be a postgresql:// URL, got: " + url);
    const std::size_t start = scheme + 3, end = url.find_first_of("/?", start);
    const std::size_t auth_end = end == std::string::npos ? url.size() : end;
    const std::size_t at = url.rfind('@', auth_end);
    return {at == std::string::npos || at < start ? start : at + 1, auth_end};
}
} // namespace

std::string pg_url_with_host(const std::string& url, const std::string& host, int port) {
    const auto [from, to] = host_span(url);
    return url.substr(0, from) + host + ":" + std::to_string(port) + url.substr(to);
}

std::pair<std::string, std::string> pg_url_host_port(const std::string& url) {
    const auto [from, to] = host_span(url);
    const std::string hostport = url.substr(from, to - from);
    const auto colon = hostport.rfind(':');
    if (colon == std::string::npos) return {hostport.empty() ? "127.0.0.1" : hostport, "5432"};
    return {hostport.substr(0, colon), hostport.substr(colon + 1)};
}

void build_store_pg(const std::string& url, const std::string& prefix, long long convs, long long per_conv) {
    PgAdmin db(url);
    const long long users = std::max<long long>(1, convs / 10);
    const long long t0 = now_us();
    // The ids and owners are computed exactly as store_conv_id/store_user do.
    const std::string id_expr = "lpad(k::text, 8, '0') || '-5a3e-4f0b-9c1d-' || lpad((k * 7919)::text, 12, '0')";
    const std::string user_expr = fmt::format("'user' || lpad((k % {})::text, 5, '0')", users);
    db.exec("BEGIN");
    db.exec(fmt::format("INSERT INTO {0}_conversations (user_id, id, title, metadata_json, last_seq, created_at,"
                        " updated_at) SELECT {1}, {2}, '', '{{}}', {3}, {4}, {4} FROM generate_series(0, {5}) k",
                        prefix, user_expr, id_expr, per_conv, t0, convs - 1));
    // seq-major: the conversations grew side by side, so a conversation's rows are spread over
    // the heap as in a real store.
    db.exec(fmt::format(
        "INSERT INTO {0}_messages (user_id, conversation_id, seq, role, content, metadata_json, created_at)"
        " SELECT {1}, {2}, s, CASE WHEN s % 2 = 1 THEN 'user' ELSE 'assistant' END,"
        " CASE WHEN s % 2 = 1 THEN '{3}' ELSE '{4}' END, '{{}}', {5} + s"
        " FROM generate_series(1, {6}) s CROSS JOIN generate_series(0, {7}) k",
        prefix, user_expr, id_expr, user_text("stored user message"), reply_text(), t0, per_conv, convs - 1));
    db.exec("COMMIT");
    db.exec(fmt::format("ANALYZE {0}_conversations, {0}_messages", prefix));
}

} // namespace bench
