// The SQLite floor: the turn written by hand against the sqlite3 C API, every statement
// prepared once per connection (sqlite3_prepare_v2) and reset/rebound per use.
//
//   BEGIN IMMEDIATE
//   UPDATE raw_conversations SET last_seq = last_seq + 1 ... RETURNING last_seq
//   INSERT the user message
//   SELECT the window by seq range
//   COMMIT
//   (agent)
//   BEGIN IMMEDIATE; UPDATE ... RETURNING last_seq; INSERT the reply; COMMIT
//
// WAL, synchronous=NORMAL, busy_timeout 10 s: the same durability and locking as convstate.

#include <sqlite3.h>

#include <chrono>
#include <thread>

#include <fmt/format.h>

#include "bench.hpp"

namespace bench {
namespace {

constexpr int busy_timeout_ms = 10000;

sqlite3* open_db(const std::string& path) {
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        nullptr) != SQLITE_OK)
        fail(fmt::format("raw sqlite: cannot open {}: {}", path, db ? sqlite3_errmsg(db) : "out of memory"));
    sqlite3_busy_timeout(db, busy_timeout_ms);
    return db;
}

void exec(sqlite3* db, const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
        std::string msg = err ? err : sqlite3_errmsg(db);
        sqlite3_free(err);
        fail(fmt::format("raw sqlite: {}: {}", sql, msg));
    }
}

/** A prepared statement, prepared once and reused. */
class Stmt {
public:
    Stmt(sqlite3* db, std::string sql) : db_(db), sql_(std::move(sql)) {
        if (sqlite3_prepare_v2(db, sql_.c_str(), -1, &st_, nullptr) != SQLITE_OK)
            fail(fmt::format("raw sqlite: prepare {}: {}", sql_, sqlite3_errmsg(db)));
    }
    ~Stmt() { sqlite3_finalize(st_); }
    Stmt(const Stmt&) = delete;
    Stmt& operator=(const Stmt&) = delete;

    Stmt& bind(int i, const std::string& v) {
        sqlite3_bind_text(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
        return *this;
    }
    Stmt& bind(int i, long long v) {
        sqlite3_bind_int64(st_, i, v);
        return *this;
    }
    /** Steps once: true for a row, false when done; SQLITE_BUSY is returned via *busy. */
    bool step(bool* busy = nullptr) {
        const int rc = sqlite3_step(st_);
        if (rc == SQLITE_ROW) return true;
        if (rc == SQLITE_DONE) return false;
        if (busy && (rc & 0xff) == SQLITE_BUSY) {
            *busy = true;
            return false;
        }
        fail(fmt::format("raw sqlite: {}: {}", sql_, sqlite3_errmsg(db_)));
    }
    void reset() {
        sqlite3_reset(st_);
        sqlite3_clear_bindings(st_);
    }
    long long int64(int col) const { return sqlite3_column_int64(st_, col); }
    std::string text(int col) const {
        const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st_, col));
        return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(st_, col))) : std::string();
    }
    Row row() const { return Row{int64(0), text(1), text(2), text(3), text(4), text(5)}; }

private:
    sqlite3* db_;
    std::string sql_;
    sqlite3_stmt* st_ = nullptr;
};

struct Busy {};

class RawSqliteClient final : public Client {
public:
    RawSqliteClient(const std::string& path, Window w, std::atomic<std::uint64_t>& statements)
        : db_(open_db(path)), w_(w), statements_(statements) {
        exec(db_, "PRAGMA journal_mode=WAL");
        exec(db_, "PRAGMA synchronous=NORMAL");
        begin_ = std::make_unique<Stmt>(db_, "BEGIN IMMEDIATE");
        commit_ = std::make_unique<Stmt>(db_, "COMMIT");
        rollback_ = std::make_unique<Stmt>(db_, "ROLLBACK");
        conv_insert_ = std::make_unique<Stmt>(db_,
            "INSERT INTO raw_conversations (user_id, id, title, metadata_json, last_seq, created_at, updated_at)"
            " VALUES (?1, ?2, '', '{}', 0, ?3, ?3)");
        bump_ = std::make_unique<Stmt>(db_,
            "UPDATE raw_conversations SET last_seq = last_seq + 1, updated_at = ?3"
            " WHERE user_id = ?1 AND id = ?2 RETURNING last_seq");
        msg_insert_ = std::make_unique<Stmt>(db_,
            "INSERT INTO raw_messages (user_id, conversation_id, seq, role, content, metadata_json, created_at)"
            " VALUES (?1, ?2, ?3, ?4, ?5, '{}', ?6)");
        range_ = std::make_unique<Stmt>(db_,
            "SELECT seq, role, content, name, tool_calls_json, tool_call_id FROM raw_messages"
            " WHERE user_id = ?1 AND conversation_id = ?2 AND seq > ?3 AND seq <= ?4 ORDER BY seq");
        last_ = std::make_unique<Stmt>(db_,
            "SELECT seq, role, content, name, tool_calls_json, tool_call_id FROM raw_messages"
            " WHERE user_id = ?1 AND conversation_id = ?2 AND seq > (SELECT last_seq FROM raw_conversations"
            " WHERE user_id = ?1 AND id = ?2) - ?3 ORDER BY seq");
    }
    ~RawSqliteClient() override {
        begin_.reset(); commit_.reset(); rollback_.reset(); conv_insert_.reset(); bump_.reset();
        msg_insert_.reset(); range_.reset(); last_.reset();
        sqlite3_close(db_);
    }

    TurnOut turn(const std::string& user, const std::string& conversation_id, const std::string& text) override {
        TurnOut out;
        out.conversation_id = conversation_id.empty() ? random_uuid() : conversation_id;
        const std::string& id = out.conversation_id;
        std::vector<Row> window;
        // Steps 1-3 in one write transaction.
        with_retry([&] {
            window.clear();
            const long long now = now_us();
            if (conversation_id.empty()) {
                conv_insert_->bind(1, user).bind(2, id).bind(3, now);
                run(*conv_insert_);
            }
            out.user_seq = bump(user, id, now);
            insert(user, id, out.user_seq, "user", text, now);
            const long long lo = w_.all ? 0 : std::max<long long>(0, out.user_seq - w_.n);
            range_->bind(1, user).bind(2, id).bind(3, lo).bind(4, out.user_seq);
            ++statements_;
            while (range_->step()) window.push_back(range_->row());
            range_->reset();
        });
        // Step 4: the stub agent.
        check_window(w_, window, text, "raw");
        const std::string& reply = reply_text();
        // Step 5.
        with_retry([&] {
            const long long now = now_us();
            out.reply_seq = bump(user, id, now);
            insert(user, id, out.reply_seq, "assistant", reply, now);
        });
        return out;
    }

    void load_last(const std::string& user, const std::string& conversation_id, int n, long long last_seq) override {
        std::vector<Row> rows;
        last_->bind(1, user).bind(2, conversation_id).bind(3, static_cast<long long>(n));
        ++statements_;
        while (last_->step()) rows.push_back(last_->row());
        last_->reset();
        if (static_cast<long long>(rows.size()) != n || rows.front().seq != last_seq - n + 1 || rows.back().seq != last_seq)
            fail(fmt::format("raw sqlite: load_last({}) returned {} rows", n, rows.size()));
    }

private:
    /** Runs one statement to completion (a write); throws Busy on SQLITE_BUSY. */
    void run(Stmt& st) {
        bool busy = false;
        ++statements_;
        st.step(&busy);
        st.reset();
        if (busy) throw Busy{};
    }
    long long bump(const std::string& user, const std::string& id, long long now) {
        bump_->bind(1, user).bind(2, id).bind(3, now);
        ++statements_;
        if (!bump_->step()) fail("raw sqlite: conversation " + id + " not found");
        const long long seq = bump_->int64(0);
        if (bump_->step()) fail("raw sqlite: two conversation rows");
        bump_->reset();
        return seq;
    }
    void insert(const std::string& user, const std::string& id, long long seq, const char* role,
                const std::string& content, long long now) {
        const std::string r = role;
        msg_insert_->bind(1, user).bind(2, id).bind(3, seq).bind(4, r).bind(5, content).bind(6, now);
        run(*msg_insert_);
    }
    /** One write transaction: BEGIN IMMEDIATE (waits up to busy_timeout), fn, COMMIT.
     *  SQLITE_BUSY past the timeout rolls back and retries (as convstate does). */
    template <class F>
    void with_retry(F&& fn) {
        for (int attempt = 0;; ++attempt) {
            try {
                run(*begin_);
                fn();
                run(*commit_);
                return;
            } catch (const Busy&) {
                if (!sqlite3_get_autocommit(db_)) run(*rollback_);
                if (attempt >= 8) fail("raw sqlite: still busy after 8 retries");
                std::this_thread::sleep_for(std::chrono::milliseconds(5 << attempt));
            }
        }
    }

    sqlite3* db_;
    Window w_;
    std::atomic<std::uint64_t>& statements_;
    std::unique_ptr<Stmt> begin_, commit_, rollback_, conv_insert_, bump_, msg_insert_, range_, last_;
};

class RawSqlite final : public Impl {
public:
    explicit RawSqlite(std::string path) : path_(std::move(path)) {
        sqlite3* db = open_db(path_);
        exec(db, "PRAGMA journal_mode=WAL");
        for (const std::string& ddl : raw_schema()) exec(db, ddl);
        sqlite3_close(db);
    }
    const char* name() const override { return "raw"; }
    std::unique_ptr<Client> client(const Window& w) override {
        return std::make_unique<RawSqliteClient>(path_, w, statements_);
    }
    std::uint64_t round_trips() const override { return statements_.load(); }
    std::vector<Row> load_all(const std::string& user, const std::string& id) override {
        sqlite3* db = open_db(path_);
        std::vector<Row> rows;
        {
            Stmt st(db, "SELECT seq, role, content, name, tool_calls_json, tool_call_id FROM raw_messages"
                        " WHERE user_id = ?1 AND conversation_id = ?2 ORDER BY seq");
            st.bind(1, user).bind(2, id);
            while (st.step()) rows.push_back(st.row());
        }
        sqlite3_close(db);
        return rows;
    }
    std::string create_conversation(const std::string& user) override {
        sqlite3* db = open_db(path_);
        const std::string id = random_uuid();
        {
            Stmt st(db, "INSERT INTO raw_conversations (user_id, id, title, metadata_json, last_seq, created_at,"
                        " updated_at) VALUES (?1, ?2, '', '{}', 0, ?3, ?3)");
            st.bind(1, user).bind(2, id).bind(3, now_us());
            st.step();
        }
        sqlite3_close(db);
        return id;
    }

private:
    std::string path_;
    std::atomic<std::uint64_t> statements_{0};
};

} // namespace

std::unique_ptr<Impl> make_raw_sqlite(const std::string& path) { return std::make_unique<RawSqlite>(path); }

void build_store_sqlite(const std::string& path, const std::string& prefix, long long convs, long long per_conv) {
    // Nobody else has the file open: build without a journal, then switch to WAL.
    sqlite3* db = open_db(path);
    exec(db, "PRAGMA journal_mode=DELETE");
    exec(db, "PRAGMA journal_mode=OFF");
    exec(db, "PRAGMA synchronous=OFF");
    exec(db, "PRAGMA cache_size=-262144");
    const long long users = std::max<long long>(1, convs / 10);
    const long long t0 = now_us();
    std::vector<std::string> ids, owners;
    ids.reserve(static_cast<std::size_t>(convs));
    owners.reserve(static_cast<std::size_t>(convs));
    for (long long k = 0; k < convs; ++k) {
        ids.push_back(store_conv_id(k));
        owners.push_back(store_user(k, users));
    }
    const std::string u = user_text("stored user message"), a = reply_text();
    const std::string user_role = "user", assistant_role = "assistant";
    exec(db, "BEGIN");
    {
        Stmt conv(db, fmt::format("INSERT INTO {}_conversations (user_id, id, title, metadata_json, last_seq,"
                                  " created_at, updated_at) VALUES (?1, ?2, '', '{{}}', ?3, ?4, ?4)", prefix));
        for (long long k = 0; k < convs; ++k) {
            conv.bind(1, owners[k]).bind(2, ids[k]).bind(3, per_conv).bind(4, t0);
            conv.step();
            conv.reset();
        }
    }
    {
        const std::string sql = fmt::format("INSERT INTO {}_messages (user_id, conversation_id, seq, role, content,"
                                            " metadata_json, created_at) VALUES (?1, ?2, ?3, ?4, ?5, '{{}}', ?6)", prefix);
        Stmt msg(db, sql);
        for (long long s = 1; s <= per_conv; ++s)
            for (long long k = 0; k < convs; ++k) {
                const bool is_user = s % 2 == 1;
                msg.bind(1, owners[k]).bind(2, ids[k]).bind(3, s).bind(4, is_user ? user_role : assistant_role)
                    .bind(5, is_user ? u : a).bind(6, t0 + s);
                msg.step();
                msg.reset();
            }
    }
    exec(db, "COMMIT");
    exec(db, "PRAGMA journal_mode=WAL");
    sqlite3_close(db);
}

} // namespace bench
