// The MariaDB floor: the turn written by hand against the MariaDB C API (libmariadb), every
// statement a server-side prepared statement (mysql_stmt_prepare once per connection, executed
// over the binary protocol). Sessions: autocommit off, READ COMMITTED, strict sql_mode, utf8mb4.
//
// MariaDB has no UPDATE ... RETURNING and no data-modifying CTEs. The UPDATE that takes the
// conversation's row lock returns the new last_seq anyway: it assigns
// last_seq = LAST_INSERT_ID(last_seq + 1), and the server reports that value in the statement's
// OK packet (mysql_stmt_insert_id), so no SELECT of last_seq is needed. Per turn:
//
//   1-3  UPDATE raw_conversations SET last_seq = LAST_INSERT_ID(last_seq + 1) ... (row lock; seq)
//        INSERT the user message at that seq
//        SELECT the window by the bounded key range seq > seq - N (full history: seq > 0)
//        COMMIT
//   4    (the agent)
//   5    UPDATE ... LAST_INSERT_ID(last_seq + 1); INSERT the reply; COMMIT
//
// 7 round trips, 2 commits (each waits for its redo flush: innodb_flush_log_at_trx_commit=1).
// A creating turn INSERTs the conversation (last_seq 1) instead of the UPDATE. The transaction
// starts implicitly with its first statement (autocommit off: no START TRANSACTION round trip).
// S5's loads (ORDER BY seq DESC LIMIT n on the primary key) run in autocommit.
// In READ COMMITTED the window's SELECT takes a fresh snapshot after the row lock was granted,
// i.e. after every earlier seq's transaction committed: the window has no holes. A deadlock or
// lock wait timeout (none are expected: one row lock per transaction) rolls back and retries.

#include <mysql.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <mutex>
#include <utility>

#include <fmt/format.h>

#include "bench.hpp"

namespace bench {
namespace {

// --- connections ----------------------------------------------------------------------------

struct MyTarget {
    std::string host = "127.0.0.1", user, password, db, unix_socket;
    unsigned port = 3306;
};

std::string percent_decode(const std::string& s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size()) {
            const std::string hex = s.substr(i + 1, 2);
            if (std::isxdigit(static_cast<unsigned char>(hex[0])) && std::isxdigit(static_cast<unsigned char>(hex[1]))) {
                out += static_cast<char>(std::stoi(hex, nullptr, 16));
                i += 2;
                continue;
            }
        }
        out += s[i];
    }
    return out;
}

/** mysql://user:password@host:port/database[?unix_socket=PATH] (mariadb:// too). */
MyTarget parse_url(const std::string& url) {
    const auto scheme = url.find("://");
    if (scheme == std::string::npos || (url.substr(0, scheme) != "mysql" && url.substr(0, scheme) != "mariadb"))
        fail("--mariadb-url must be a mysql:// URL (mysql://user:password@host:port/database), got: " + url);
    std::string rest = url.substr(scheme + 3), query;
    if (const auto q = rest.find('?'); q != std::string::npos) {
        query = rest.substr(q + 1);
        rest.resize(q);
    }
    MyTarget t;
    const auto slash = rest.find('/');
    if (slash == std::string::npos || slash + 1 == rest.size()) fail("the MariaDB URL names no database: " + url);
    t.db = percent_decode(rest.substr(slash + 1));
    std::string auth = rest.substr(0, slash);
    if (const auto at = auth.rfind('@'); at != std::string::npos) {
        const std::string userinfo = auth.substr(0, at);
        auth = auth.substr(at + 1);
        const auto colon = userinfo.find(':');
        t.user = percent_decode(userinfo.substr(0, colon));
        if (colon != std::string::npos) t.password = percent_decode(userinfo.substr(colon + 1));
    }
    if (const auto colon = auth.rfind(':'); colon != std::string::npos && auth.find(']', colon) == std::string::npos) {
        t.port = static_cast<unsigned>(std::stoul(auth.substr(colon + 1)));
        auth.resize(colon);
    }
    if (auth.size() > 2 && auth.front() == '[' && auth.back() == ']') auth = auth.substr(1, auth.size() - 2);
    if (!auth.empty()) t.host = percent_decode(auth);
    for (std::size_t start = 0; start < query.size();) {
        const std::size_t amp = std::min(query.find('&', start), query.size());
        const std::string kv = query.substr(start, amp - start);
        const auto eq = kv.find('=');
        const std::string key = kv.substr(0, eq), value = eq == std::string::npos ? "" : percent_decode(kv.substr(eq + 1));
        if (key == "unix_socket") t.unix_socket = value;
        else if (!key.empty()) fail("raw mariadb: unsupported URL parameter " + key + " (known: unix_socket)");
        start = amp + 1;
    }
    return t;
}

[[noreturn]] void fail_conn(MYSQL* c, const std::string& what) {
    fail(fmt::format("raw mariadb: {}: {} ({})", what, mysql_error(c), mysql_errno(c)));
}

void query_or_fail(MYSQL* c, const std::string& sql) {
    if (mysql_real_query(c, sql.data(), sql.size()) != 0) fail_conn(c, sql);
    // Drain every result (e.g. ANALYZE TABLE returns one).
    for (;;) {
        if (MYSQL_RES* r = mysql_store_result(c)) mysql_free_result(r);
        else if (mysql_field_count(c) != 0) fail_conn(c, sql);
        const int more = mysql_next_result(c);
        if (more == -1) break;
        if (more > 0) fail_conn(c, sql);
    }
}

/** A session as the floor and the harness use it: utf8mb4, strict sql_mode, READ COMMITTED. */
MYSQL* connect(const std::string& url, bool autocommit) {
    static std::once_flag init;
    std::call_once(init, [] {
        if (mysql_library_init(0, nullptr, nullptr) != 0) fail("raw mariadb: mysql_library_init failed");
    });
    const MyTarget t = parse_url(url);
    MYSQL* c = mysql_init(nullptr);
    if (!c) fail("raw mariadb: mysql_init: out of memory");
    mysql_optionsv(c, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    my_bool report_truncation = 1;
    mysql_optionsv(c, MYSQL_REPORT_DATA_TRUNCATION, &report_truncation);
    if (!mysql_real_connect(c, t.host.c_str(), t.user.empty() ? nullptr : t.user.c_str(),
                            t.password.empty() ? nullptr : t.password.c_str(), t.db.c_str(), t.port,
                            t.unix_socket.empty() ? nullptr : t.unix_socket.c_str(), 0)) {
        const std::string err = fmt::format("{} ({})", mysql_error(c), mysql_errno(c));
        mysql_close(c);
        fail(fmt::format("raw mariadb: cannot connect to {}:{}/{}: {}", t.host, t.port, t.db, err));
    }
    query_or_fail(c, "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,"
                     "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION,ONLY_FULL_GROUP_BY'");
    query_or_fail(c, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED");
    if (mysql_autocommit(c, autocommit ? 1 : 0) != 0) fail_conn(c, "autocommit");
    return c;
}

// --- prepared statements --------------------------------------------------------------------

/** Thrown on a deadlock or lock wait timeout: the transaction was (or must be) rolled back. */
struct Retry {};

bool retryable(unsigned err) { return err == 1213 || err == 1205; }

/** One server-side prepared statement, prepared once and executed many times. */
class Stmt {
public:
    Stmt(MYSQL* c, std::string sql) : sql_(std::move(sql)), st_(mysql_stmt_init(c)) {
        if (!st_) fail_conn(c, "mysql_stmt_init");
        if (mysql_stmt_prepare(st_, sql_.data(), sql_.size()) != 0) die("prepare");
        params_.resize(mysql_stmt_param_count(st_));
    }
    ~Stmt() { mysql_stmt_close(st_); }
    Stmt(const Stmt&) = delete;
    Stmt& operator=(const Stmt&) = delete;

    /** Binds parameter i (0-based) to s, which must outlive execute(). */
    Stmt& bind(std::size_t i, const std::string& s) {
        MYSQL_BIND& b = params_.at(i);
        b = MYSQL_BIND{};
        b.buffer_type = MYSQL_TYPE_STRING;
        b.buffer = const_cast<char*>(s.data());
        b.buffer_length = static_cast<unsigned long>(s.size());
        return *this;
    }
    /** Binds parameter i to *v, which must outlive execute(). */
    Stmt& bind(std::size_t i, const long long* v) {
        MYSQL_BIND& b = params_.at(i);
        b = MYSQL_BIND{};
        b.buffer_type = MYSQL_TYPE_LONGLONG;
        b.buffer = const_cast<long long*>(v);
        return *this;
    }
    /** Sends the statement (one round trip); throws Retry on a deadlock or lock wait timeout. */
    void execute() {
        if (!params_.empty() && mysql_stmt_bind_param(st_, params_.data()) != 0) die("bind");
        if (mysql_stmt_execute(st_) != 0) {
            if (retryable(mysql_stmt_errno(st_))) throw Retry{};
            die("execute");
        }
    }
    unsigned long long affected_rows() { return mysql_stmt_affected_rows(st_); }
    /** The value the statement assigned with LAST_INSERT_ID(expr) (from its OK packet). */
    unsigned long long insert_id() { return mysql_stmt_insert_id(st_); }

    /** After execute() of a SELECT of raw_msg_cols: reads every row (streamed, unbuffered). */
    void fetch_rows(std::vector<Row>& out) {
        if (!results_bound_) bind_results();
        if (mysql_stmt_bind_result(st_, res_) != 0) die("bind_result");
        for (;;) {
            const int rc = mysql_stmt_fetch(st_);
            if (rc == MYSQL_NO_DATA) break;
            if (rc == 1) {
                if (retryable(mysql_stmt_errno(st_))) throw Retry{};
                die("fetch");
            }
            if (rc == MYSQL_DATA_TRUNCATED) refetch_truncated();
            Row r;
            r.seq = seq_;
            r.role = text(1);
            r.content = text(2);
            r.name = text(3);
            r.tool_calls_json = text(4);
            r.tool_call_id = text(5);
            out.push_back(std::move(r));
        }
        mysql_stmt_free_result(st_);
    }

private:
    static constexpr int ncols = 6;

    [[noreturn]] void die(const char* what) {
        fail(fmt::format("raw mariadb: {} {}: {} ({})", what, sql_, mysql_stmt_error(st_), mysql_stmt_errno(st_)));
    }
    void bind_results() {
        if (mysql_stmt_field_count(st_) != ncols) die("expected 6 result columns");
        std::memset(res_, 0, sizeof res_);
        res_[0].buffer_type = MYSQL_TYPE_LONGLONG;
        res_[0].buffer = &seq_;
        res_[0].is_null = &null_[0];
        for (int i = 1; i < ncols; ++i) {
            buf_[i].resize(512);
            point(i);
        }
        results_bound_ = true;
    }
    void point(int i) {
        MYSQL_BIND& b = res_[i];
        b.buffer_type = MYSQL_TYPE_STRING;
        b.buffer = buf_[i].data();
        b.buffer_length = static_cast<unsigned long>(buf_[i].size());
        b.length = &len_[i];
        b.is_null = &null_[i];
        b.error = &err_[i];
    }
    // A column longer than its buffer: grow the buffer, fetch that column again, keep the size.
    void refetch_truncated() {
        bool grown = false;
        for (int i = 1; i < ncols; ++i) {
            if (null_[i] || len_[i] <= buf_[i].size()) continue;
            buf_[i].resize(len_[i]);
            point(i);
            if (mysql_stmt_fetch_column(st_, &res_[i], static_cast<unsigned>(i), 0) != 0) die("fetch_column");
            grown = true;
        }
        if (grown && mysql_stmt_bind_result(st_, res_) != 0) die("bind_result");
    }
    std::string text(int i) const {
        if (null_[i]) return {};
        return std::string(buf_[i].data(), std::min<std::size_t>(len_[i], buf_[i].size()));
    }

    std::string sql_;
    MYSQL_STMT* st_;
    std::vector<MYSQL_BIND> params_;
    bool results_bound_ = false;
    MYSQL_BIND res_[ncols]{};
    long long seq_ = 0;
    std::vector<char> buf_[ncols];
    unsigned long len_[ncols]{};
    my_bool null_[ncols]{};
    my_bool err_[ncols]{};
};

// The schema of convstate's MariaDB migrations 1-8 (src/sql_mysql.cpp) for the two tables a
// turn touches: the same columns (in the same order), keys and indexes, prefixed raw_.
#define MY_KEY "VARBINARY(255)"
#define MY_TEXT "LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
#define MY_TABLE " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC"
const char* const my_schema[] = {
    "CREATE TABLE IF NOT EXISTS raw_conversations ("
    " user_id " MY_KEY " NOT NULL, id " MY_KEY " NOT NULL, title " MY_TEXT " NOT NULL,"
    " metadata_json " MY_TEXT " NOT NULL, last_seq BIGINT NOT NULL, created_at BIGINT NOT NULL,"
    " updated_at BIGINT NOT NULL, create_key " MY_KEY ", active_turn " MY_KEY ", active_since BIGINT,"
    " truncations BIGINT NOT NULL DEFAULT 0, external_key " MY_KEY ", forked_from_id " MY_KEY ","
    " forked_from_seq BIGINT,"
    " PRIMARY KEY (user_id, id))" MY_TABLE,
    "CREATE INDEX IF NOT EXISTS raw_conversations_recent ON raw_conversations (user_id, updated_at DESC, id DESC)",
    "CREATE UNIQUE INDEX IF NOT EXISTS raw_conversations_create_key ON raw_conversations (user_id, create_key)",
    "CREATE INDEX IF NOT EXISTS raw_conversations_forks ON raw_conversations (user_id, forked_from_id)",
    "CREATE TABLE IF NOT EXISTS raw_messages ("
    " user_id " MY_KEY " NOT NULL, conversation_id " MY_KEY " NOT NULL, seq BIGINT NOT NULL,"
    " role " MY_KEY " NOT NULL, content " MY_TEXT " NOT NULL, name " MY_KEY ", tool_calls_json " MY_TEXT ","
    " tool_call_id " MY_KEY ", metadata_json " MY_TEXT " NOT NULL, token_count BIGINT,"
    " idempotency_key " MY_KEY ", created_at BIGINT NOT NULL, run_owner " MY_KEY ", run_started_at BIGINT,"
    " content_parts_json " MY_TEXT ","
    " PRIMARY KEY (user_id, conversation_id, seq))" MY_TABLE,
    "CREATE UNIQUE INDEX IF NOT EXISTS raw_messages_idempotency ON raw_messages"
    " (user_id, conversation_id, idempotency_key)",
};

#define RAW_COLS "seq, role, content, name, tool_calls_json, tool_call_id"

// ? user_id, id, now, now
const char* const sql_create =
    "INSERT INTO raw_conversations (user_id, id, title, metadata_json, last_seq, created_at, updated_at)"
    " VALUES (?, ?, '', '{}', 1, ?, ?)";
// ? now, user_id, id: takes the row lock; the new last_seq comes back as the insert id.
const char* const sql_bump =
    "UPDATE raw_conversations SET last_seq = LAST_INSERT_ID(last_seq + 1), updated_at = ?"
    " WHERE user_id = ? AND id = ?";
// ? user_id, conversation_id, seq, role, content, now
const char* const sql_insert =
    "INSERT INTO raw_messages (user_id, conversation_id, seq, role, content, metadata_json, created_at)"
    " VALUES (?, ?, ?, ?, ?, '{}', ?)";
// ? user_id, conversation_id, lo, hi: (lo, hi]
const char* const sql_range =
    "SELECT " RAW_COLS " FROM raw_messages WHERE user_id = ? AND conversation_id = ? AND seq > ? AND seq <= ?"
    " ORDER BY seq";
// ? user_id, conversation_id, n: the last n by the primary key, newest first (reversed here).
const char* const sql_last =
    "SELECT " RAW_COLS " FROM raw_messages WHERE user_id = ? AND conversation_id = ? ORDER BY seq DESC LIMIT ?";

class RawMysqlClient final : public Client {
public:
    RawMysqlClient(const std::string& url, Window w, std::atomic<std::uint64_t>& statements,
                   std::atomic<std::uint64_t>& retries)
        : c_(connect(url, false)), w_(w), statements_(statements), retries_(retries),
          create_(c_, sql_create), bump_(c_, sql_bump), insert_(c_, sql_insert), range_(c_, sql_range),
          last_(c_, sql_last) {}
    ~RawMysqlClient() override { mysql_close(c_); }
    RawMysqlClient(const RawMysqlClient&) = delete;
    RawMysqlClient& operator=(const RawMysqlClient&) = delete;

    TurnOut turn(const std::string& user, const std::string& conversation_id, const std::string& text) override {
        set_autocommit(false);
        TurnOut out;
        out.conversation_id = conversation_id.empty() ? random_uuid() : conversation_id;
        const std::string& id = out.conversation_id;
        std::vector<Row> window;
        // Steps 1-3: one transaction.
        transaction([&] {
            window.clear();
            const long long now = now_us();
            if (conversation_id.empty()) {
                create_.bind(0, user).bind(1, id).bind(2, &now).bind(3, &now);
                run(create_);
                out.user_seq = 1;
            } else {
                out.user_seq = bump(user, id, now);
            }
            insert(user, id, out.user_seq, user_role, text, now);
            const long long lo = w_.all ? 0 : std::max<long long>(0, out.user_seq - w_.n);
            range_.bind(0, user).bind(1, id).bind(2, &lo).bind(3, &out.user_seq);
            run(range_);
            window.reserve(static_cast<std::size_t>(out.user_seq - lo));
            range_.fetch_rows(window);
        });
        // Step 4: the stub agent.
        check_window(w_, window, text, "raw");
        // Step 5: one transaction.
        transaction([&] {
            const long long now = now_us();
            out.reply_seq = bump(user, id, now);
            insert(user, id, out.reply_seq, assistant_role, reply_text(), now);
        });
        return out;
    }

    void load_last(const std::string& user, const std::string& conversation_id, int n, long long last_seq) override {
        set_autocommit(true); // a lone read: no transaction is left open after it
        const long long limit = n;
        std::vector<Row> rows;
        rows.reserve(static_cast<std::size_t>(n));
        last_.bind(0, user).bind(1, conversation_id).bind(2, &limit);
        run(last_);
        last_.fetch_rows(rows);
        std::reverse(rows.begin(), rows.end());
        if (static_cast<long long>(rows.size()) != n || rows.front().seq != last_seq - n + 1 || rows.back().seq != last_seq)
            fail(fmt::format("raw mariadb: load_last({}) returned {} rows", n, rows.size()));
    }

private:
    inline static const std::string user_role = "user", assistant_role = "assistant";

    void run(Stmt& st) {
        ++statements_;
        st.execute();
    }
    /** Turns commit explicitly; S5's loads run alone. Switching is one round trip (counted), once
     *  per client in practice: a client does either turns or loads. */
    void set_autocommit(bool on) {
        if (autocommit_ == on) return;
        ++statements_;
        if (mysql_autocommit(c_, on ? 1 : 0) != 0) fail_conn(c_, "autocommit");
        autocommit_ = on;
    }
    long long bump(const std::string& user, const std::string& id, long long now) {
        bump_.bind(0, &now).bind(1, user).bind(2, id);
        run(bump_);
        if (bump_.affected_rows() != 1) fail("raw mariadb: conversation " + id + " not found");
        const auto seq = static_cast<long long>(bump_.insert_id());
        if (seq < 1) fail("raw mariadb: the UPDATE reported no last_seq (insert id 0)");
        return seq;
    }
    void insert(const std::string& user, const std::string& id, long long seq, const std::string& role,
                const std::string& content, long long now) {
        insert_.bind(0, user).bind(1, id).bind(2, &seq).bind(3, role).bind(4, content).bind(5, &now);
        run(insert_);
    }
    /** fn's statements, then COMMIT; a deadlock or lock wait timeout rolls back and runs it again. */
    template <class F>
    void transaction(F&& fn) {
        for (int attempt = 0;; ++attempt) {
            try {
                fn();
                ++statements_;
                if (mysql_commit(c_) != 0) {
                    if (retryable(mysql_errno(c_))) throw Retry{};
                    fail_conn(c_, "COMMIT");
                }
                return;
            } catch (const Retry&) {
                ++retries_;
                ++statements_;
                if (mysql_rollback(c_) != 0) fail_conn(c_, "ROLLBACK");
                if (attempt >= 8) fail("raw mariadb: still deadlocking after 8 retries");
            }
        }
    }

    MYSQL* c_;
    bool autocommit_ = false;
    Window w_;
    std::atomic<std::uint64_t>& statements_;
    std::atomic<std::uint64_t>& retries_;
    Stmt create_, bump_, insert_, range_, last_;
};

class RawMysql final : public Impl {
public:
    explicit RawMysql(std::string url) : url_(std::move(url)) {
        MyAdmin admin(url_);
        for (const char* ddl : my_schema) admin.exec(ddl);
    }
    const char* name() const override { return "raw"; }
    std::unique_ptr<Client> client(const Window& w) override {
        return std::make_unique<RawMysqlClient>(url_, w, statements_, retries_);
    }
    std::uint64_t round_trips() const override { return statements_.load(); }
    std::vector<Row> load_all(const std::string& user, const std::string& id) override {
        MYSQL* c = connect(url_, true);
        std::vector<Row> rows;
        {
            Stmt st(c, "SELECT " RAW_COLS " FROM raw_messages WHERE user_id = ? AND conversation_id = ? ORDER BY seq");
            st.bind(0, user).bind(1, id);
            st.execute();
            st.fetch_rows(rows);
        }
        mysql_close(c);
        return rows;
    }
    std::string create_conversation(const std::string& user) override {
        MYSQL* c = connect(url_, true);
        const std::string id = random_uuid();
        const long long now = now_us();
        {
            Stmt st(c, "INSERT INTO raw_conversations (user_id, id, title, metadata_json, last_seq, created_at,"
                       " updated_at) VALUES (?, ?, '', '{}', 0, ?, ?)");
            st.bind(0, user).bind(1, id).bind(2, &now).bind(3, &now);
            st.execute();
        }
        mysql_close(c);
        return id;
    }

private:
    std::string url_;
    std::atomic<std::uint64_t> statements_{0};
    std::atomic<std::uint64_t> retries_{0};
};

} // namespace

std::unique_ptr<Impl> make_raw_mysql(const std::string& url) { return std::make_unique<RawMysql>(url); }

// --- harness helpers ----------------------------------------------------------------------

MyAdmin::MyAdmin(const std::string& url) : conn_(connect(url, true)) {}
MyAdmin::~MyAdmin() { mysql_close(static_cast<MYSQL*>(conn_)); }

bool MyAdmin::try_exec(const std::string& sql, std::string* error) {
    auto* c = static_cast<MYSQL*>(conn_);
    bool ok = mysql_real_query(c, sql.data(), sql.size()) == 0;
    while (ok) {
        if (MYSQL_RES* r = mysql_store_result(c)) mysql_free_result(r);
        else if (mysql_field_count(c) != 0) ok = false;
        if (!ok) break;
        const int more = mysql_next_result(c);
        if (more == -1) break;
        if (more > 0) ok = false;
    }
    if (!ok && error) *error = fmt::format("{} ({})", mysql_error(c), mysql_errno(c));
    return ok;
}

void MyAdmin::exec(const std::string& sql) {
    std::string err;
    if (!try_exec(sql, &err)) fail(fmt::format("mariadb: {}: {}", sql, err));
}

std::vector<std::vector<std::string>> MyAdmin::query(const std::string& sql) {
    auto* c = static_cast<MYSQL*>(conn_);
    if (mysql_real_query(c, sql.data(), sql.size()) != 0) fail_conn(c, sql);
    MYSQL_RES* r = mysql_store_result(c);
    if (!r) fail_conn(c, sql);
    std::vector<std::vector<std::string>> out;
    const unsigned n = mysql_num_fields(r);
    while (MYSQL_ROW row = mysql_fetch_row(r)) {
        const unsigned long* len = mysql_fetch_lengths(r);
        std::vector<std::string> v;
        for (unsigned i = 0; i < n; ++i) v.emplace_back(row[i] ? std::string(row[i], len[i]) : std::string());
        out.push_back(std::move(v));
    }
    mysql_free_result(r);
    while (mysql_next_result(c) == 0)
        if (MYSQL_RES* more = mysql_store_result(c)) mysql_free_result(more);
    return out;
}

std::string mysql_url_with_db(const std::string& url, const std::string& db) {
    const auto scheme = url.find("://");
    if (scheme == std::string::npos) fail("--mariadb-url must be a mysql:// URL, got: " + url);
    const auto q = url.find('?', scheme + 3);
    const std::string head = url.substr(0, q), tail = q == std::string::npos ? "" : url.substr(q);
    const auto slash = head.find('/', scheme + 3);
    return (slash == std::string::npos ? head : head.substr(0, slash)) + "/" + db + tail;
}

void build_store_mysql(const std::string& url, const std::string& prefix, long long convs, long long per_conv) {
    MyAdmin db(url);
    const long long users = std::max<long long>(1, convs / 10);
    const long long t0 = now_us();
    // The ids and owners are computed exactly as store_conv_id/store_user do; the rows come from
    // the SEQUENCE engine's seq_<from>_to_<to> tables.
    auto id_expr = [](const char* k) {
        return fmt::format("CONCAT(LPAD({0}, 8, '0'), '-5a3e-4f0b-9c1d-', LPAD({0} * 7919, 12, '0'))", k);
    };
    auto user_expr = [&](const char* k) { return fmt::format("CONCAT('user', LPAD({} % {}, 5, '0'))", k, users); };
    db.exec(fmt::format("INSERT INTO {0}_conversations (user_id, id, title, metadata_json, last_seq, created_at,"
                        " updated_at) SELECT {1}, {2}, '', '{{}}', {3}, {4}, {4} FROM seq_0_to_{5} k",
                        prefix, user_expr("k.seq"), id_expr("k.seq"), per_conv, t0, convs - 1));
    // seq-major: the conversations grew side by side (one statement, one commit per seq), so
    // every conversation's rows arrive spread over the whole build as in a real store.
    for (long long s = 1; s <= per_conv; ++s) {
        const bool is_user = s % 2 == 1;
        db.exec(fmt::format(
            "INSERT INTO {0}_messages (user_id, conversation_id, seq, role, content, metadata_json, created_at)"
            " SELECT {1}, {2}, {3}, '{4}', '{5}', '{{}}', {6} FROM seq_0_to_{7} k",
            prefix, user_expr("k.seq"), id_expr("k.seq"), s, is_user ? "user" : "assistant",
            is_user ? user_text("stored user message") : reply_text(), t0 + s, convs - 1));
    }
    db.exec(fmt::format("ANALYZE TABLE {0}_conversations, {0}_messages", prefix));
}

} // namespace bench
