// The SQL text of MySQL/MariaDB (dialect_mysql.cpp): the common statements where MySQL accepts
// them, its own schema and its spellings elsewhere.

#include <stdexcept>

#include "sql.hpp"
#include "sql_tables.hpp"

namespace convstate::detail {
namespace {

// Keys are byte strings compared byte by byte (as on SQLite and PostgreSQL): VARBINARY, at most
// 255 bytes (the default Limits; an index key must fit InnoDB's 3072 bytes). Text is LONGTEXT in
// utf8mb4 with its binary collation, so every Unicode character round-trips as it was sent.
#define MY_KEY "VARBINARY(255)"
#define MY_TEXT "LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
#define MY_TABLE " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC"

void replace_all(std::string& s, const std::string& from, const std::string& to) {
    for (auto at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
}

// Drops a trailing " RETURNING …": the library reads the row back (Capabilities::update_returning).
void drop_returning(std::string& s) {
    const auto at = s.rfind(" RETURNING ");
    if (at == std::string::npos) throw std::logic_error("convstate: no RETURNING in " + s);
    s.erase(at);
}

SqlText mysql_text() {
    SqlText s = common_sql();
    s.begin_write = "BEGIN";
    // A session lock (DDL commits as it goes), per database: GET_LOCK's names are server-wide.
    s.migrate_lock = "SELECT GET_LOCK(CONCAT('convstate_migrate:', LEFT(DATABASE(), 40)), 60)";
    s.migrate_unlock = "SELECT RELEASE_LOCK(CONCAT('convstate_migrate:', LEFT(DATABASE(), 40)))";
    s.schema_table_exists = "SELECT COUNT(*) FROM information_schema.tables"
                            " WHERE table_schema = DATABASE() AND table_name = '" CS_VERSION "'";
    s.create_schema_table = "CREATE TABLE IF NOT EXISTS " CS_VERSION
                            " (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)" MY_TABLE;

    // The same versions as the other dialects, each statement idempotent (a migration cut short
    // is completed by the next run). No partial indexes: a unique index admits many NULLs.
    s.migrations.clear();
    s.migrations.push_back({1,
        {"CREATE TABLE IF NOT EXISTS " CS_CONV " ("
         " user_id " MY_KEY " NOT NULL, id " MY_KEY " NOT NULL, title " MY_TEXT " NOT NULL,"
         " metadata_json " MY_TEXT " NOT NULL, last_seq BIGINT NOT NULL, created_at BIGINT NOT NULL,"
         " updated_at BIGINT NOT NULL, create_key " MY_KEY ", active_turn " MY_KEY ", active_since BIGINT,"
         " PRIMARY KEY (user_id, id))" MY_TABLE,
         "CREATE INDEX IF NOT EXISTS convstate_conversations_recent ON " CS_CONV " (user_id, updated_at DESC, id DESC)",
         "CREATE UNIQUE INDEX IF NOT EXISTS convstate_conversations_create_key ON " CS_CONV " (user_id, create_key)",
         "CREATE TABLE IF NOT EXISTS " CS_MSG " ("
         " user_id " MY_KEY " NOT NULL, conversation_id " MY_KEY " NOT NULL, seq BIGINT NOT NULL,"
         " role " MY_KEY " NOT NULL, content " MY_TEXT " NOT NULL, name " MY_KEY ", tool_calls_json " MY_TEXT ","
         " tool_call_id " MY_KEY ", metadata_json " MY_TEXT " NOT NULL, token_count BIGINT,"
         " idempotency_key " MY_KEY ", created_at BIGINT NOT NULL,"
         " PRIMARY KEY (user_id, conversation_id, seq))" MY_TABLE,
         "CREATE UNIQUE INDEX IF NOT EXISTS convstate_messages_idempotency ON " CS_MSG
         " (user_id, conversation_id, idempotency_key)"}});
    s.migrations.push_back({2,
        {"ALTER TABLE " CS_MSG " ADD COLUMN IF NOT EXISTS run_owner " MY_KEY,
         "ALTER TABLE " CS_MSG " ADD COLUMN IF NOT EXISTS run_started_at BIGINT"}});
    s.migrations.push_back({3, {"ALTER TABLE " CS_CONV " ADD COLUMN IF NOT EXISTS truncations BIGINT NOT NULL DEFAULT 0"}});
    s.migrations.push_back({4, {"ALTER TABLE " CS_CONV " ADD COLUMN IF NOT EXISTS external_key " MY_KEY}});
    s.migrations.push_back({5,
        {"CREATE TABLE IF NOT EXISTS " CS_SUM " ("
         " user_id " MY_KEY " NOT NULL, conversation_id " MY_KEY " NOT NULL, covers_through_seq BIGINT NOT NULL,"
         " content " MY_TEXT " NOT NULL, metadata_json " MY_TEXT " NOT NULL, created_at BIGINT NOT NULL,"
         " PRIMARY KEY (user_id, conversation_id, covers_through_seq))" MY_TABLE}});
    s.migrations.push_back({6,
        {"ALTER TABLE " CS_CONV " ADD COLUMN IF NOT EXISTS forked_from_id " MY_KEY,
         "ALTER TABLE " CS_CONV " ADD COLUMN IF NOT EXISTS forked_from_seq BIGINT",
         "CREATE INDEX IF NOT EXISTS convstate_conversations_forks ON " CS_CONV " (user_id, forked_from_id)"}});
    s.migrations.push_back({7,
        {"CREATE TABLE IF NOT EXISTS " CS_USAGE " ("
         " user_id " MY_KEY " NOT NULL, id " MY_KEY " NOT NULL, conversation_id " MY_KEY " NOT NULL,"
         " seq BIGINT NOT NULL, model " MY_KEY ", prompt_tokens BIGINT, completion_tokens BIGINT,"
         " cached_tokens BIGINT, reasoning_tokens BIGINT, created_at BIGINT NOT NULL,"
         " PRIMARY KEY (user_id, id))" MY_TABLE,
         "CREATE INDEX IF NOT EXISTS convstate_usage_conversation ON " CS_USAGE " (user_id, conversation_id)",
         "CREATE INDEX IF NOT EXISTS convstate_usage_recent ON " CS_USAGE " (user_id, created_at)"}});
    s.migrations.push_back({8, {"ALTER TABLE " CS_MSG " ADD COLUMN IF NOT EXISTS content_parts_json " MY_TEXT}});
    s.migrations.push_back({9, {"CREATE INDEX IF NOT EXISTS convstate_conversations_updated ON " CS_CONV
                                " (updated_at, user_id, id)"}});
    if (s.migrations.size() != common_sql().migrations.size())
        throw std::logic_error("convstate: the MySQL schema lacks a migration");

    // MySQL casts to SIGNED and CHAR, not BIGINT and TEXT.
    for (std::string* q : {&s.usage_by_conversation, &s.usage_since, &s.msg_turn_user, &s.conv_reserve_turn}) {
        replace_all(*q, " AS BIGINT)", " AS SIGNED)");
        replace_all(*q, " AS TEXT)", " AS CHAR)");
    }
    // MariaDB uses a subquery's value as an index bound only from a one-row derived table (a
    // constant to its optimizer): in the WHERE clause it reads the whole conversation instead.
    // The same bind order as the common form.
    s.msg_system_prefix = "SELECT " CS_MSG_READ " FROM (SELECT LEAST(:hi, COALESCE((SELECT f.seq FROM " CS_MSG
                          " f WHERE f.user_id = :user_id2 AND f.conversation_id = :conversation_id2"
                          " AND f.role NOT IN ('system', 'developer') ORDER BY f.seq LIMIT 1) - 1, :hi2)) AS bound) AS x"
                          " JOIN " CS_MSG " m ON " CS_SCOPE " AND seq <= x.bound ORDER BY seq";
    s.sum_upsert = "INSERT INTO " CS_SUM " (user_id, " CS_SUM_COLS ") VALUES (:user_id, :conversation_id, :covers,"
                   " :content, :metadata_json, :created_at) ON DUPLICATE KEY UPDATE content = VALUES(content),"
                   " metadata_json = VALUES(metadata_json), created_at = VALUES(created_at)";
    for (std::string* q : {&s.conv_rename, &s.conv_set_metadata, &s.conv_reserve, &s.conv_reserve_turn})
        drop_returning(*q);
    // The new last_seq comes back in the UPDATE's reply, as its insert id
    // (Capabilities::reserve_sets_insert_id).
    replace_all(s.conv_reserve, "SET last_seq = last_seq + :n", "SET last_seq = LAST_INSERT_ID(last_seq + :n)");
    if (s.conv_reserve.find("LAST_INSERT_ID") == std::string::npos)
        throw std::logic_error("convstate: conv_reserve changed shape: " + s.conv_reserve);
    // InnoDB's row locks have no weaker exclusive mode: appenders and a truncate both take the
    // exclusive lock; a summary writer a shared one (it waits for an appender's short
    // transaction instead of running beside it).
    s.conv_lock += " FOR UPDATE";
    s.conv_lock_truncate += " FOR UPDATE";
    s.conv_summary_guard += " LOCK IN SHARE MODE";
    return s;
}

} // namespace

const SqlText& mysql_sql() {
    static const SqlText sql = mysql_text();
    return sql;
}

} // namespace convstate::detail
