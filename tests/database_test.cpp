#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "support.hpp"
#include "sql.hpp"
#include "url.hpp"

using namespace convstate;

TEST_CASE("database: a fresh database is migrated to the latest schema, idempotently") {
    cstest::FreshDb raw;
    Database db = cstest::open_fresh(&raw);
    CHECK(db.schema_version() == Database::latest_schema_version());
    CHECK(db.dialect() == cstest::dialect_under_test());
    db.migrate();
    db.migrate();
    Database::open(raw.url); // a second open migrates nothing
    CHECK(cstest::query_number(raw, "SELECT COUNT(*) FROM convstate_schema_version") ==
          Database::latest_schema_version());
}

TEST_CASE("database: malformed URLs and options are InvalidArgument naming the field") {
    struct Case { std::string url; std::string field; };
    const std::vector<Case> cases{
        {"", "url"},
        {"just-a-path.db", "url"},
        {"oracle://root@localhost/db", "url"},
        {"mysql://root@localhost", "url"},
        {"mysql://root@localhost/", "url"},
        {"mysql://u@127.0.0.1:99999/db", "url"},
        {"mysql://u@127.0.0.1/db?charset=latin1", "url"},
        {"mysql://u@127.0.0.1/db?password=x", "url"},
        {"mysql://u@127.0.0.1/db?bad-key=1", "url"},
        {"mysql://u@127.0.0.1/db?connect_timeout=soon", "url"},
        {"mariadb://u@[::1/db", "url"},
        {"sqlite3://", "url"},
        {"sqlite3://file.db?mode=ro", "url"},
        {"sqlite3://bad%zzescape.db", "url"},
        {"postgresql://u@127.0.0.1:99999/db", "url"},
        {"postgresql://u@127.0.0.1:12ab/db", "url"},
        {"postgresql://u@127.0.0.1/db?bad-key=1", "url"},
        {"postgresql://u@127.0.0.1/db?password=x", "url"},
        {"postgresql://u@[::1/db", "url"},
        {"postgresql://u@h1:5432,h2:99999/db", "url"},
        {"postgresql://u@h1,h2,h3/db?port=5432,5433", "url"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.url);
        try {
            Database::open(c.url);
            FAIL("no error");
        } catch (const InvalidArgument& e) {
            CHECK(e.field() == c.field);
            CHECK(e.kind() == ErrorKind::invalid_argument);
        }
    }
    DatabaseOptions bad;
    bad.pool_size = 0;
    CHECK(cstest::invalid_field([&] { Database::open("sqlite3://never-created.db", bad); }) == "pool_size");
}

// Found by tests/fuzz/fuzz_url.cpp: the text before a later "://" was repeated as the scheme, and
// libpq's message quoted the URI with the password percent-encoded (the scrub looked for it
// as typed).
TEST_CASE("database: a refused URL's message never repeats a password, even where the scheme should be") {
    for (const std::string url : {"app:s3cret-pw@db.internal/chat?next=postgresql://x", "u:s3cret-pw@h://",
                                  "mariadb:u:s3cret-pw@h://x",
                                  // libpq quotes the URI, where the password is percent-encoded.
                                  "postgresql://u:s3cret-pw,x@[::1/db", "postgresql://u:s3cret-pw@[::1/db"}) {
        CAPTURE(url);
        try {
            Database::open(url);
            FAIL("no error");
        } catch (const InvalidArgument& e) {
            CHECK(e.field() == "url");
            CHECK(std::string(e.what()).find("s3cret-pw") == std::string::npos);
            CHECK(std::string(e.what()).find("s3cret") == std::string::npos);
        }
    }
    // Found by fuzz_url: a password that its mask "***" contains ("*", "**") and that libpq's
    // message also holds elsewhere (here in the database name) made the scrub find it in each
    // replacement again, forever.
    for (const std::string password : {"*", "**", "***"}) {
        CAPTURE(password);
        try {
            Database::open("postgresql://u:" + password + "@[::1/db" + password);
            FAIL("no error");
        } catch (const InvalidArgument& e) {
            CHECK(e.field() == "url");
            CHECK(std::string(e.what()).find("matching \"]\"") != std::string::npos);
        }
    }
    // A well-formed unknown scheme is still named.
    try {
        Database::open("oracle://root@localhost/db");
        FAIL("no error");
    } catch (const InvalidArgument& e) {
        CHECK(std::string(e.what()).find("unsupported scheme 'oracle'") != std::string::npos);
    }
}

TEST_CASE("database: a server's refusal naming the password's characters is scrubbed, and ends") {
    if (!cstest::is_postgres()) return; // a server that names the role it refuses
    // The role (named like the password) does not exist, so PostgreSQL's message quotes it; with
    // the password "*" the scrub used to find the password in its own "***" mask forever.
    const std::string url = cstest::fresh_db().url;
    const auto from = url.find("://") + 3, to = url.find('@');
    REQUIRE(to != std::string::npos);
    for (const std::string password : {"*", "**"}) {
        CAPTURE(password);
        try {
            Database::open(url.substr(0, from) + password + ":" + password + url.substr(to));
            FAIL("no error");
        } catch (const StorageError& e) {
            const std::string what = e.what();
            CAPTURE(what);
            CHECK(what.find("role \"***\" does not exist") != std::string::npos);
            CHECK(what.find('"' + password + '"') == std::string::npos);
        }
    }
}

TEST_CASE("database: an unreachable server is a StorageError that never shows the password") {
    DatabaseOptions options;
    options.connect_timeout = std::chrono::seconds(2);
    try {
        // Port 1 on loopback: nothing listens there.
        Database::open("postgresql://someone:Sup3rS3cretPw@127.0.0.1:1/nodb", options);
        FAIL("no error");
    } catch (const StorageError& e) {
        const std::string what = e.what();
        CAPTURE(what);
        CHECK(what.find("Sup3rS3cretPw") == std::string::npos);
        CHECK(what.find("127.0.0.1") != std::string::npos);
        CHECK(what.find("nodb") != std::string::npos);
    }
    try {
        Database::open("sqlite3:///nonexistent-dir-for-convstate/x.db");
        FAIL("no error");
    } catch (const StorageError& e) {
        CHECK(std::string(e.what()).find("nonexistent-dir-for-convstate") != std::string::npos);
    }
}

TEST_CASE("migrations: two processes migrating one fresh database at once both succeed") {
    for (int round = 0; round < 3; ++round) {
        const cstest::FreshDb raw = cstest::fresh_db();
        const int a = cstest::spawn_worker({"migrate", raw.url});
        const int b = cstest::spawn_worker({"migrate", raw.url});
        CHECK(cstest::wait_worker(a) == 0);
        CHECK(cstest::wait_worker(b) == 0);
        CHECK(cstest::query_number(raw, "SELECT COUNT(*) FROM convstate_schema_version") ==
              Database::latest_schema_version());
        CHECK(cstest::query_number(raw, "SELECT MAX(version) FROM convstate_schema_version") ==
              Database::latest_schema_version());
    }
}

TEST_CASE("migrations: a database stamped with a future schema version is refused") {
    cstest::FreshDb raw;
    cstest::open_fresh(&raw);
    cstest::exec(raw, "INSERT INTO convstate_schema_version (version, applied_at) VALUES (999, 0)");
    for (bool migrate : {true, false}) {
        DatabaseOptions options;
        options.migrate_on_open = migrate;
        CAPTURE(migrate);
        try {
            Database::open(raw.url, options);
            FAIL("no error");
        } catch (const StorageError& e) {
            const std::string what = e.what();
            CHECK(what.find("999") != std::string::npos);
            CHECK(what.find("newer") != std::string::npos);
        }
    }
}

TEST_CASE("database: a pooled connection that the server closed is replaced") {
    if (!cstest::is_postgres()) return; // SQLite has no server to drop connections
    DatabaseOptions options;
    options.pool_size = 3;
    cstest::Fixture fx{options};
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const Conversation c = store.create("u1");
    for (int round = 0; round < 3; ++round) {
        // Kill every connection the library holds to this database.
        const long long killed = cstest::query_number(
            raw, "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity"
                 " WHERE application_name = 'convstate' AND datname = current_database()");
        CHECK(killed >= 1);
        for (int i = 0; i < 6; ++i) { // more calls than pooled connections: every slot recovers
            CHECK(store.get("u1", c.id).id == c.id);
            messages.append("u1", c.id, {.role = Role::user, .content = "after kill"});
        }
    }
    CHECK(messages.count("u1", c.id) == 18);
}

TEST_CASE("database: a connection lost during COMMIT is retried only for keyed writes") {
    if (!cstest::is_postgres()) return; // needs a server that can drop us mid-COMMIT
    // It drops the connection with a trigger, and Citus has no triggers on distributed tables.
    if (cstest::is_citus()) return;
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const Conversation c = store.create("u1");
    // A deferred constraint trigger runs inside COMMIT; it terminates its own backend the first
    // time it fires after the sequence is reset (nextval is not rolled back with the transaction).
    cstest::exec(raw, "CREATE SEQUENCE die_once");
    cstest::exec(raw, R"(CREATE FUNCTION die_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.content LIKE 'die:%' AND nextval('die_once') = 1 THEN
            PERFORM pg_terminate_backend(pg_backend_pid());
            PERFORM pg_sleep(5);
          END IF;
          RETURN NULL;
        END $$)");
    cstest::exec(raw, "CREATE CONSTRAINT TRIGGER die AFTER INSERT ON convstate_messages"
                      " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION die_at_commit()");

    // Without an idempotency key the library cannot know whether the row is stored: it says so.
    CHECK_THROWS_AS(messages.append("u1", c.id, {.role = Role::user, .content = "die:unkeyed"}), OutcomeUnknown);
    // The connection recovers for the next call.
    cstest::exec(raw, "SELECT setval('die_once', 1, false)");
    // With a key, the write is retried and stored exactly once.
    const Message m = messages.append("u1", c.id, {.role = Role::user, .content = "die:keyed", .idempotency_key = "k1"});
    CHECK(m.content == "die:keyed");
    CHECK(cstest::query_number(raw, "SELECT COUNT(*) FROM convstate_messages WHERE idempotency_key = 'k1'") == 1);
    CHECK(cstest::query_number(raw, "SELECT nextval('die_once')") >= 2); // the trigger really fired
    const auto all = messages.load_all("u1", c.id);
    REQUIRE(!all.empty());
    CHECK(all.back().content == "die:keyed");
    for (std::size_t i = 0; i < all.size(); ++i) CHECK(all[i].seq == static_cast<std::int64_t>(i + 1));
}

TEST_CASE("database: PostgreSQL URLs mean what they mean to libpq, several hosts included") {
    const DatabaseOptions options;
    auto has = [](const detail::ConnectionTarget& t, const std::string& part) {
        CAPTURE(t.connect_string);
        return t.connect_string.find(part) != std::string::npos;
    };
    const detail::ConnectionTarget multi = detail::parse_url(
        "postgresql://app:pw@10.0.0.1:5432,10.0.0.2:5433/chat?target_session_attrs=read-write", options);
    CHECK(has(multi, "host='10.0.0.1,10.0.0.2'"));
    CHECK(has(multi, "port='5432,5433'"));
    CHECK(has(multi, "target_session_attrs='read-write'"));
    CHECK(has(multi, "dbname='chat'"));
    CHECK(multi.display == "postgresql database 'chat' at 10.0.0.1:5432,10.0.0.2:5433 as user 'app'");
    CHECK(multi.display.find("pw") == std::string::npos);
    // IPv6 hosts, one port for every host, a socket directory given as a parameter.
    const detail::ConnectionTarget v6 = detail::parse_url("postgres://[::1]:6000,[fe80::2]:6001/db", options);
    CHECK(has(v6, "host='::1,fe80::2'"));
    CHECK(has(v6, "port='6000,6001'"));
    const detail::ConnectionTarget one_port = detail::parse_url("postgresql://h1,h2/db?port=6432", options);
    CHECK(one_port.display == "postgresql database 'db' at h1:6432,h2:6432 as user '(default)'");
    const detail::ConnectionTarget socket = detail::parse_url("postgresql:///db?host=/var/run/postgresql", options);
    CHECK(has(socket, "host='/var/run/postgresql'"));
    // Every libpq parameter passes through; the library's defaults fill in what is not given.
    const detail::ConnectionTarget params =
        detail::parse_url("postgresql://h/db?sslmode=require&connect_timeout=3&keepalives=0", options);
    CHECK(has(params, "sslmode='require'"));
    CHECK(has(params, "connect_timeout='3'"));
    CHECK(has(params, "keepalives='0'"));
    CHECK_FALSE(has(params, "keepalives_idle"));
    CHECK(has(params, "application_name='convstate'"));
    CHECK(has(params, "statement_timeout=30000"));
}

TEST_CASE("database: SQLite durability is NORMAL unless the options or the URL ask for FULL") {
    DatabaseOptions options;
    CHECK_FALSE(detail::parse_url("sqlite3:///tmp/x.db", options).sqlite_full_sync);
    CHECK(detail::parse_url("sqlite3:///tmp/x.db?synchronous=full", options).sqlite_full_sync);
    options.sqlite_synchronous = SqliteSynchronous::full;
    CHECK(detail::parse_url("sqlite3:///tmp/x.db", options).sqlite_full_sync);
    CHECK_FALSE(detail::parse_url("sqlite3:///tmp/x.db?synchronous=normal", options).sqlite_full_sync);
    CHECK(detail::parse_url("sqlite3:///tmp/x.db?synchronous=full", options).connect_string.find('?') ==
          std::string::npos);
    for (const char* bad : {"sqlite3:///tmp/x.db?synchronous=off", "sqlite3:///tmp/x.db?mode=ro",
                            "sqlite3:///tmp/x.db?synchronous=full&x=1"})
        CHECK(cstest::invalid_field([&] { detail::parse_url(bad, options); }) == "url");
    if (cstest::dialect_under_test() != Dialect::sqlite) return;
    // A FULL database works as any other.
    const cstest::FreshDb raw = cstest::fresh_db();
    Database db = Database::open(raw.url + "?synchronous=full");
    const TurnResult r = ChatOrchestrator(db).turn(cstest::request("u", std::nullopt, "hi"),
                                                    [](const AgentInput&) { return cstest::text_reply("ok"); });
    CHECK(MessageRepository(db).count("u", r.conversation_id) == 2);
}

TEST_CASE("migrations: a schema v1 database with data is upgraded in place and its conversations work on") {
    const cstest::FreshDb raw = cstest::fresh_db();
    // The database as the first release left it: schema 1 and its rows, written by hand.
    const detail::SqlText& sql = detail::sql_for(cstest::dialect_under_test());
    cstest::exec(raw, sql.create_schema_table);
    for (const std::string& statement : sql.migrations.at(0).statements) cstest::exec(raw, statement);
    cstest::exec(raw, "INSERT INTO convstate_schema_version (version, applied_at) VALUES (1, 1)");
    cstest::exec(raw, "INSERT INTO convstate_conversations (user_id, id, title, metadata_json, last_seq, created_at,"
                      " updated_at) VALUES ('u', 'old', 'from v1', '{}', 3, 10, 20)");
    cstest::exec(raw, "INSERT INTO convstate_messages (user_id, conversation_id, seq, role, content, metadata_json,"
                      " idempotency_key, created_at) VALUES ('u', 'old', 1, 'system', 'be brief', '{}', NULL, 10),"
                      " ('u', 'old', 2, 'user', 'hi', '{}', 'k1', 11), ('u', 'old', 3, 'assistant', 'hello', '{}',"
                      " 'k1\x1freply', 12)");

    Database db = Database::open(raw.url);
    CHECK(db.schema_version() == Database::latest_schema_version());
    const ConversationStore store(db);
    const MessageRepository messages(db);
    const Conversation c = store.get("u", "old");
    CHECK(c.title == "from v1");
    CHECK(c.last_seq == 3);
    CHECK(cstest::seqs(messages.load_all("u", "old")) == std::vector<std::int64_t>{1, 2, 3});

    // A turn continues it; the old keyed turn replays; undo works on the upgraded rows.
    const ChatOrchestrator chat(db);
    const TurnResult r = chat.turn(cstest::request("u", "old", "again"),
                                   [](const AgentInput& in) { return cstest::text_reply(std::to_string(in.history.size())); });
    CHECK(r.user_seq == 4);
    CHECK(r.reply == "4");
    const TurnResult replay = chat.turn(cstest::request("u", "old", "hi", "k1"),
                                        [](const AgentInput&) -> AgentReply { throw std::runtime_error("not called"); });
    CHECK(replay.replayed);
    CHECK(replay.reply_seq == 3);
    CHECK(messages.truncate("u", "old", 3) == 2);
    CHECK(messages.append("u", "old", cstest::msg(Role::user, "after undo")).seq == 4);
    cstest::check_dense(messages.load_all("u", "old"));
}
