#include "sql.hpp"

#include <cctype>
#include <stdexcept>

#include "sql_tables.hpp"

namespace convstate::detail {

SqlText common_sql() {
    SqlText s;
    s.create_schema_table =
        "CREATE TABLE IF NOT EXISTS " CS_VERSION " (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)";
    s.max_schema_version = "SELECT MAX(version) FROM " CS_VERSION;
    s.insert_schema_version = "INSERT INTO " CS_VERSION " (version, applied_at) VALUES (:version, :applied_at)";

    // Version 1. Every table is keyed by user_id first: tenant isolation by construction, and
    // the distribution column for a sharded PostgreSQL.
    s.migrations.push_back({1,
        {"CREATE TABLE " CS_CONV " ("
         " user_id TEXT NOT NULL, id TEXT NOT NULL, title TEXT NOT NULL, metadata_json TEXT NOT NULL,"
         " last_seq BIGINT NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,"
         // create_key: the idempotency key of the turn that created it; active_turn/since:
         // the running turn under ConcurrentTurns::reject.
         " create_key TEXT, active_turn TEXT, active_since BIGINT,"
         " PRIMARY KEY (user_id, id))",
         "CREATE INDEX convstate_conversations_recent ON " CS_CONV " (user_id, updated_at DESC, id DESC)",
         "CREATE UNIQUE INDEX convstate_conversations_create_key ON " CS_CONV
         " (user_id, create_key) WHERE create_key IS NOT NULL",
         "CREATE TABLE " CS_MSG " ("
         " user_id TEXT NOT NULL, conversation_id TEXT NOT NULL, seq BIGINT NOT NULL,"
         " role TEXT NOT NULL, content TEXT NOT NULL, name TEXT, tool_calls_json TEXT,"
         " tool_call_id TEXT, metadata_json TEXT NOT NULL, token_count BIGINT,"
         " idempotency_key TEXT, created_at BIGINT NOT NULL,"
         " PRIMARY KEY (user_id, conversation_id, seq))",
         "CREATE UNIQUE INDEX convstate_messages_idempotency ON " CS_MSG
         " (user_id, conversation_id, idempotency_key) WHERE idempotency_key IS NOT NULL"}});

    // Version 2: who is running a keyed turn's agent. A keyed turn's user message records its
    // run's owner (a random token) and start; a duplicate of the turn waits for that run instead
    // of calling the agent again, and takes over once the owner gave up (NULL) or its lease ran out.
    s.migrations.push_back({2,
        {"ALTER TABLE " CS_MSG " ADD COLUMN run_owner TEXT",
         "ALTER TABLE " CS_MSG " ADD COLUMN run_started_at BIGINT"}});

    // Version 3: how many truncates a conversation has had. A truncate frees seqs for new
    // messages; on PostgreSQL a one-statement turn step compares this counter as its snapshot saw it
    // with the locked row's, to tell that rows it read in the snapshot may have been replaced.
    s.migrations.push_back({3, {"ALTER TABLE " CS_CONV " ADD COLUMN truncations BIGINT NOT NULL DEFAULT 0"}});

    // Version 4: the host's own key of a conversation. Its id is derived from (user_id, key)
    // (detail::keyed_conversation_id), so the primary key makes the key unique per user.
    s.migrations.push_back({4, {"ALTER TABLE " CS_CONV " ADD COLUMN external_key TEXT"}});

    // Version 5: summary checkpoints. A summary stands for messages 1..covers_through_seq in a
    // window; the messages stay. Keyed like the messages, and never written with the
    // conversation's row (a summary does not move last_seq or take the row's write lock).
    s.migrations.push_back({5,
        {"CREATE TABLE " CS_SUM " ("
         " user_id TEXT NOT NULL, conversation_id TEXT NOT NULL, covers_through_seq BIGINT NOT NULL,"
         " content TEXT NOT NULL, metadata_json TEXT NOT NULL, created_at BIGINT NOT NULL,"
         " PRIMARY KEY (user_id, conversation_id, covers_through_seq))"}});
    s.sum_upsert = "INSERT INTO " CS_SUM " (user_id, " CS_SUM_COLS ") VALUES (:user_id, :conversation_id, :covers,"
                   " :content, :metadata_json, :created_at) ON CONFLICT (user_id, conversation_id, covers_through_seq)"
                   " DO UPDATE SET content = excluded.content, metadata_json = excluded.metadata_json,"
                   " created_at = excluded.created_at";
    s.sum_all = "SELECT " CS_SUM_COLS " FROM " CS_SUM " WHERE " CS_SCOPE " ORDER BY covers_through_seq";
    // A window's first read from a summary: the latest summary at or below :hi2 (shaped as a row:
    // seq 0, covers_through_seq in token_count, last column 2) and the messages in
    // (max(:lo, its seq), :hi] — one statement. A turn's window passes :hi2 = :hi - 1: it always
    // ends with the turn's user message, never with a summary covering it.
    // No ORDER BY and no derived table: MariaDB would sort and materialise both arms in on-disk
    // temporary tables (their LONGTEXT columns cannot live in memory), two per read. The messages
    // arm is a primary-key range; the reader (fetch_messages_and_summary) puts rows in seq order
    // should the server not return them so, and takes the summary's row from wherever it comes.
    // Every subquery names the user and conversation by parameter, not by correlation: Citus
    // routes a statement to one shard only when each relation in it is filtered by user_id.
    s.msg_window_chunk =
        "SELECT " CS_MSG_READ ", NULL FROM " CS_MSG " WHERE " CS_SCOPE " AND seq > GREATEST(:lo, COALESCE((SELECT"
        " MAX(s.covers_through_seq) FROM " CS_SUM " s WHERE s.user_id = :user_id2 AND s.conversation_id = :id2"
        " AND s.covers_through_seq <= :hi2), 0)) AND seq <= :hi"
        " UNION ALL SELECT 0 AS seq, 'system' AS role, s.content, NULL AS name,"
        " NULL AS tool_calls_json, NULL AS tool_call_id, s.metadata_json, s.covers_through_seq AS token_count,"
        " NULL AS idempotency_key, NULL AS content_parts_json, s.created_at, 2 AS flag FROM " CS_SUM " s"
        " WHERE s.user_id = :user_id3 AND s.conversation_id = :id3 AND s.covers_through_seq = (SELECT"
        " MAX(s2.covers_through_seq) FROM " CS_SUM " s2 WHERE s2.user_id = :user_id4"
        " AND s2.conversation_id = :id4 AND s2.covers_through_seq <= :hi3)";
    s.sum_delete_after = "DELETE FROM " CS_SUM " WHERE " CS_SCOPE " AND covers_through_seq > :after";
    s.conv_delete_summaries = "DELETE FROM " CS_SUM " WHERE " CS_SCOPE;
    s.user_delete_summaries = "DELETE FROM " CS_SUM " WHERE user_id = :user_id";
    // What a summary writer holds while it checks its boundary: the row must not be truncated or
    // deleted meanwhile, but appenders go on (on PostgreSQL a KEY SHARE lock, which their
    // updates of last_seq do not conflict with; SQLite's write lock serialises everything).
    s.conv_summary_guard = "SELECT last_seq FROM " CS_CONV " WHERE user_id = :user_id AND id = :id";

    // Version 6: forks. A fork is an ordinary conversation that began as a copy of messages
    // 1..forked_from_seq of conversation forked_from_id (which may since have been deleted).
    s.migrations.push_back({6,
        {"ALTER TABLE " CS_CONV " ADD COLUMN forked_from_id TEXT",
         "ALTER TABLE " CS_CONV " ADD COLUMN forked_from_seq BIGINT",
         "CREATE INDEX convstate_conversations_forks ON " CS_CONV
         " (user_id, forked_from_id) WHERE forked_from_id IS NOT NULL"}});
    // The copy, server-side: one statement each for the messages and the summaries.
    s.fork_messages = "INSERT INTO " CS_MSG " (user_id, " CS_MSG_COLS ") SELECT user_id, :fork_id, seq, " CS_MSG_FIELDS
                      ", created_at FROM " CS_MSG " WHERE " CS_SCOPE " AND seq <= :at";
    s.fork_summaries = "INSERT INTO " CS_SUM " (user_id, " CS_SUM_COLS ") SELECT user_id, :fork_id, covers_through_seq,"
                       " content, metadata_json, created_at FROM " CS_SUM " WHERE " CS_SCOPE " AND covers_through_seq <= :at";
    s.conv_forks = "SELECT " CS_CONV_COLS " FROM " CS_CONV " WHERE user_id = :user_id AND forked_from_id = :id"
                   " ORDER BY created_at, id";

    // Version 7: the usage ledger, one row per reply that reported usage (AgentReply::usage).
    // Its own key: a truncate that frees the reply's seq leaves the row (the tokens were spent).
    s.migrations.push_back({7,
        {"CREATE TABLE " CS_USAGE " ("
         " user_id TEXT NOT NULL, id TEXT NOT NULL, conversation_id TEXT NOT NULL, seq BIGINT NOT NULL,"
         " model TEXT, prompt_tokens BIGINT, completion_tokens BIGINT, cached_tokens BIGINT, reasoning_tokens BIGINT,"
         " created_at BIGINT NOT NULL, PRIMARY KEY (user_id, id))",
         "CREATE INDEX convstate_usage_conversation ON " CS_USAGE " (user_id, conversation_id)",
         "CREATE INDEX convstate_usage_recent ON " CS_USAGE " (user_id, created_at)"}});
    s.usage_insert = "INSERT INTO " CS_USAGE " (user_id, id, conversation_id, seq, " CS_USAGE_FIELDS ", created_at)"
                     " VALUES (:user_id, :id, :conversation_id, :seq, :model, :prompt, :completion, :cached, :reasoning, :now)";
    s.usage_by_conversation = "SELECT model, " CS_USAGE_SUMS " FROM " CS_USAGE " WHERE " CS_SCOPE " GROUP BY model ORDER BY model IS NOT NULL, model";
    s.usage_since = "SELECT model, " CS_USAGE_SUMS " FROM " CS_USAGE " WHERE user_id = :user_id AND created_at >= :since"
                    " GROUP BY model ORDER BY model IS NOT NULL, model";
    s.conv_delete_usage = "DELETE FROM " CS_USAGE " WHERE " CS_SCOPE;
    s.user_delete_usage = "DELETE FROM " CS_USAGE " WHERE user_id = :user_id";

    // Version 8: content-part arrays (OpenAI format), stored as compact JSON beside `content`.
    s.migrations.push_back({8, {"ALTER TABLE " CS_MSG " ADD COLUMN content_parts_json TEXT"}});

    // Version 9: retention (ConversationStore::purge) finds old conversations of every user by
    // updated_at; (user_id, id) completes the key its batches page on.
    s.migrations.push_back({9, {"CREATE INDEX convstate_conversations_updated ON " CS_CONV " (updated_at, user_id, id)"}});
    // Keyset pages on (updated_at, user_id, id): a dry run deletes nothing, and a row kept
    // because it was updated meanwhile is not read again.
    s.conv_purge_page = "SELECT updated_at, user_id, id FROM " CS_CONV " WHERE updated_at < :cutoff"
                        " AND (updated_at, user_id, id) > (:after_t, :after_user, :after_id)"
                        " ORDER BY updated_at, user_id, id LIMIT :lim";
    s.conv_purge_page_user = "SELECT updated_at, user_id, id FROM " CS_CONV " WHERE user_id = :user_id AND updated_at < :cutoff"
                             " AND (updated_at, id) > (:after_t, :after_id) ORDER BY updated_at, id LIMIT :lim";
    s.totals_conversations = "SELECT COUNT(DISTINCT user_id), COUNT(*) FROM " CS_CONV;
    s.totals_messages = "SELECT COUNT(*) FROM " CS_MSG;
    // Archive: whole conversations out (keyset pages on the primary key) and back in, every
    // column a host can observe included.
    s.export_page = "SELECT " CS_CONV_COLS ", create_key, truncations FROM " CS_CONV
                    " WHERE (user_id, id) > (:after_user, :after_id) AND updated_at >= :since ORDER BY user_id, id LIMIT :lim";
    s.export_page_user = "SELECT " CS_CONV_COLS ", create_key, truncations FROM " CS_CONV
                         " WHERE user_id = :user_id AND id > :after_id AND updated_at >= :since ORDER BY id LIMIT :lim";
    s.export_conversation = "SELECT " CS_CONV_COLS ", create_key, truncations FROM " CS_CONV
                            " WHERE user_id = :user_id AND id = :id";
    s.export_usage = "SELECT id, seq, " CS_USAGE_FIELDS ", created_at FROM " CS_USAGE " WHERE " CS_SCOPE
                     " ORDER BY created_at, id";
    s.import_conversation = "INSERT INTO " CS_CONV " (" CS_CONV_COLS ", create_key, truncations) VALUES"
                            " (:id, :user_id, :title, :metadata_json, :last_seq, :created_at, :updated_at, :external_key,"
                            " :forked_from_id, :forked_from_seq, :create_key, :truncations)";
    // Deletes the row only if it is still old: a turn that updated it meanwhile keeps it.
    s.conv_purge_delete = "DELETE FROM " CS_CONV " WHERE user_id = :user_id AND id = :id AND updated_at < :cutoff";

    s.msg_run_state = "SELECT run_owner, run_started_at FROM " CS_MSG " WHERE " CS_SCOPE " AND idempotency_key = :key";
    s.msg_claim_run = "UPDATE " CS_MSG " SET run_owner = :owner, run_started_at = :now"
                      " WHERE " CS_SCOPE " AND idempotency_key = :key";
    s.msg_set_run = "UPDATE " CS_MSG " SET run_owner = :owner, run_started_at = :now WHERE " CS_SCOPE " AND seq = :seq";
    s.msg_end_run = "UPDATE " CS_MSG " SET run_owner = NULL, run_started_at = NULL"
                    " WHERE " CS_SCOPE " AND idempotency_key = :key AND run_owner = :owner";

    s.conv_insert = "INSERT INTO " CS_CONV " (" CS_CONV_COLS ", create_key) VALUES"
                    " (:id, :user_id, :title, :metadata_json, :last_seq, :created_at, :updated_at, :external_key,"
                    " :forked_from_id, :forked_from_seq, :create_key)";
    s.conv_by_create_key = "SELECT id FROM " CS_CONV " WHERE user_id = :user_id AND create_key = :key";
    s.conv_get = "SELECT " CS_CONV_COLS " FROM " CS_CONV " WHERE user_id = :user_id AND id = :id";
    // Keyset pagination on (updated_at, id), served by convstate_conversations_recent.
    s.conv_list = "SELECT " CS_CONV_COLS " FROM " CS_CONV " WHERE user_id = :user_id"
                  " AND (updated_at, id) < (:updated_at, :id) ORDER BY updated_at DESC, id DESC LIMIT :lim";
    s.conv_rename = "UPDATE " CS_CONV " SET title = :title, updated_at = :now"
                    " WHERE user_id = :user_id AND id = :id RETURNING " CS_CONV_COLS;
    s.conv_set_metadata = "UPDATE " CS_CONV " SET metadata_json = :metadata_json, updated_at = :now"
                          " WHERE user_id = :user_id AND id = :id RETURNING " CS_CONV_COLS;
    // The conversation row goes first: a concurrent append holds or waits for its lock, so no
    // message can slip in after the messages were deleted.
    s.conv_delete = "DELETE FROM " CS_CONV " WHERE user_id = :user_id AND id = :id";
    s.conv_delete_messages = "DELETE FROM " CS_MSG " WHERE " CS_SCOPE;
    s.user_delete_conversations = "DELETE FROM " CS_CONV " WHERE user_id = :user_id";
    s.user_delete_messages = "DELETE FROM " CS_MSG " WHERE user_id = :user_id";
    s.conv_exists = "SELECT last_seq FROM " CS_CONV " WHERE user_id = :user_id AND id = :id";

    s.conv_lock = "SELECT last_seq, active_turn, active_since FROM " CS_CONV " WHERE user_id = :user_id AND id = :id";
    s.conv_lock_truncate = s.conv_lock;
    s.conv_set_active = "UPDATE " CS_CONV " SET active_turn = :turn, active_since = :now WHERE user_id = :user_id AND id = :id";
    s.conv_clear_active = "UPDATE " CS_CONV " SET active_turn = NULL, active_since = NULL"
                          " WHERE user_id = :user_id AND id = :id AND active_turn = :turn";
    s.conv_bump = "UPDATE " CS_CONV " SET last_seq = :last_seq, updated_at = :now"
                  " WHERE user_id = :user_id AND id = :id";
    s.conv_truncate_to = "UPDATE " CS_CONV " SET last_seq = :last_seq, truncations = truncations + 1, updated_at = :now"
                         " WHERE user_id = :user_id AND id = :id";
    s.conv_reserve = "UPDATE " CS_CONV " SET last_seq = last_seq + :n, updated_at = :now"
                     " WHERE user_id = :user_id AND id = :id RETURNING last_seq";
    s.conv_reserve_turn = "UPDATE " CS_CONV " SET last_seq = last_seq + :n, updated_at = :now"
                          " WHERE user_id = :user_id AND id = :id AND EXISTS (SELECT 1 FROM " CS_MSG " u WHERE "
                          CS_TURN_USER ") RETURNING last_seq";
    s.msg_turn_user = "SELECT COUNT(*) FROM " CS_MSG " u WHERE " CS_TURN_USER;
    s.msg_insert_run = "INSERT INTO " CS_MSG " (user_id, " CS_MSG_COLS ", run_owner, run_started_at) VALUES"
                       " (:user_id, :conversation_id, :seq, :role, :content, :name, :tool_calls_json, :tool_call_id,"
                       " :metadata_json, :token_count, :idempotency_key, :content_parts, :created_at, :run_owner,"
                       " :run_started)";
    s.msg_by_key = "SELECT " CS_MSG_READ " FROM " CS_MSG " WHERE " CS_SCOPE " AND idempotency_key = :key";
    s.msg_insert = "INSERT INTO " CS_MSG " (user_id, " CS_MSG_COLS ") VALUES (:user_id, :conversation_id,"
                   " :seq, :role, :content, :name, :tool_calls_json, :tool_call_id, :metadata_json,"
                   " :token_count, :idempotency_key, :content_parts, :created_at)";
    // Archive::import_conversation's messages, msg_insert_rows rows per statement. Each row's
    // placeholders get their own names (:seq_2…): SQLite binds a repeated name once.
    {
        const std::string tuple = s.msg_insert.substr(s.msg_insert.find(" VALUES ") + 8);
        s.msg_insert_many = s.msg_insert;
        for (int i = 1; i < msg_insert_rows; ++i) {
            std::string row;
            for (std::size_t at = 0; at < tuple.size(); ++at) {
                row += tuple[at];
                if (tuple[at] != ':') continue;
                while (at + 1 < tuple.size() && (std::isalnum(static_cast<unsigned char>(tuple[at + 1])) || tuple[at + 1] == '_'))
                    row += tuple[++at];
                row += "_" + std::to_string(i);
            }
            s.msg_insert_many += ", " + row;
        }
    }
    s.msg_all = "SELECT " CS_MSG_READ " FROM " CS_MSG " WHERE " CS_SCOPE " ORDER BY seq";
    // Seqs are dense, so the last n are a key range: the read touches n index entries however
    // long the conversation is (ORDER BY seq DESC LIMIT n can make the planner scan it all).
    s.msg_last = "SELECT " CS_MSG_READ " FROM " CS_MSG " WHERE " CS_SCOPE " AND seq > (SELECT last_seq FROM " CS_CONV
                 " WHERE user_id = :user_id2 AND id = :id2) - :n ORDER BY seq";
    s.msg_after = "SELECT " CS_MSG_READ " FROM " CS_MSG " WHERE " CS_SCOPE " AND seq > :after ORDER BY seq LIMIT :lim";
    // The page just below :before: a key range ending at min(:before, last_seq + 1).
    s.msg_before = "SELECT " CS_MSG_READ " FROM " CS_MSG " WHERE " CS_SCOPE " AND seq < :before"
                   " AND seq >= LEAST(:before2, (SELECT last_seq + 1 FROM " CS_CONV
                   " WHERE user_id = :user_id2 AND id = :id2)) - :lim ORDER BY seq";
    s.msg_range = "SELECT " CS_MSG_READ " FROM " CS_MSG " WHERE " CS_SCOPE " AND seq > :lo AND seq <= :hi ORDER BY seq";
    // The conversation's leading system (and developer) messages: those before its first other
    // message. One upper bound (SQLite would use only one of two), found by a probe that stops at
    // the first non-system message. Binds hi, user, conversation (the probe's), hi, user,
    // conversation: the bound comes first so that MariaDB's form (sql_mysql.cpp) binds alike.
    s.msg_system_prefix = "SELECT " CS_MSG_READ " FROM " CS_MSG " WHERE seq <= LEAST(:hi, COALESCE("
                          "(SELECT f.seq FROM " CS_MSG " f WHERE f.user_id = :user_id2 AND f.conversation_id = :conversation_id2"
                          " AND f.role NOT IN ('system', 'developer') ORDER BY f.seq LIMIT 1) - 1, :hi2)) AND " CS_SCOPE
                          " ORDER BY seq";
    s.msg_count = "SELECT COUNT(*) FROM " CS_MSG " WHERE " CS_SCOPE;
    s.msg_role_at = "SELECT role, CASE WHEN tool_calls_json IS NULL THEN 0 ELSE 1 END FROM " CS_MSG " WHERE " CS_SCOPE
                    " AND seq = :seq";
    s.msg_delete_after = "DELETE FROM " CS_MSG " WHERE " CS_SCOPE " AND seq > :after";
    return s;
}

namespace {

SqlText sqlite_text() {
    SqlText s = common_sql();
    s.begin_write = "BEGIN IMMEDIATE";
    s.schema_table_exists = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '" CS_VERSION "'";
    // SQLite spells LEAST as the two-argument scalar MIN.
    for (std::string* q : {&s.msg_before, &s.msg_system_prefix}) q->replace(q->find("LEAST("), 6, "MIN(");
    s.msg_window_chunk.replace(s.msg_window_chunk.find("GREATEST("), 9, "MAX(");
    return s;
}

SqlText postgresql_text() {
    SqlText s = common_sql();
    s.begin_write = "BEGIN";
    // Any constant works; this one spells "cvst".
    s.migrate_lock = "SELECT pg_advisory_xact_lock(1668707188)";
    s.citus_installed = "SELECT COUNT(*) FROM pg_extension WHERE extname = 'citus'";
    s.citus_distributed = "SELECT COUNT(*) FROM pg_dist_partition WHERE logicalrelid = CAST(:t AS regclass)";
    s.citus_distribute = "SELECT create_distributed_table(CAST(:t AS regclass), 'user_id', colocate_with => :with)";
    s.distributed_tables = {CS_CONV, CS_MSG, CS_SUM, CS_USAGE};
    s.schema_table_exists = "SELECT COUNT(*) FROM information_schema.tables"
                            " WHERE table_schema = current_schema() AND table_name = '" CS_VERSION "'";
    // Appenders exclude each other (NO KEY UPDATE, like their UPDATEs of last_seq); a truncate
    // excludes summary writers too (UPDATE conflicts with their KEY SHARE).
    s.conv_lock_truncate = s.conv_lock + " FOR UPDATE";
    s.conv_lock += " FOR NO KEY UPDATE";
    s.conv_summary_guard += " FOR KEY SHARE";

    // Steps 1-3 of a turn in one statement (its own transaction): the UPDATE takes the row lock
    // and allocates the seq, the INSERT stores the user message, the SELECTs return the window's
    // first chunk — the key range (last_seq - :n, last_seq) plus the leading system messages
    // below it — and the new message. No rows: the conversation is missing or not the user's.
    // The SELECTs see the statement's snapshot, taken before the UPDATE waited for the lock, so
    // the caller checks the range for holes (a writer that committed meanwhile) and re-reads.
    // The bounds are scalar subqueries, not a join with conv: the planner then uses them as index
    // conditions even without statistics (a join filter would read the whole conversation).
    //
    // Both statements may set synchronous_commit for their own transaction (:defer_flush = 1:
    // off, so the commit does not wait for the WAL flush; the turn's reply, committed with the
    // session's setting, flushes it). set_config(..., true) is local to the statement's
    // transaction and read at its commit; with :defer_flush = 0 it keeps the session's value.
    s.turn_begin =
        "WITH conv AS (UPDATE " CS_CONV " SET last_seq = last_seq + 1, updated_at = :now"
        " WHERE user_id = :user_id AND id = :id AND " CS_DEFER_FLUSH " IS NOT NULL RETURNING last_seq, truncations),"
        " ins AS (INSERT INTO " CS_MSG " (user_id, conversation_id, seq, role, content, content_parts_json, metadata_json,"
        " idempotency_key, created_at, run_owner, run_started_at) SELECT :user_id2, :id2, last_seq, 'user', :content,"
        " :parts, :metadata_json, :key, :now2, :run_owner, :run_started FROM conv RETURNING " CS_MSG_READ ")"
        " SELECT " CS_MSG_READ ", CAST(NULL AS BIGINT) FROM " CS_MSG " WHERE user_id = :user_id3 AND conversation_id = :id3"
        // Above the latest summary only, for a window from_summary (:from_summary = 1).
        " AND seq > GREATEST((SELECT last_seq FROM conv) - :n, COALESCE((SELECT MAX(s.covers_through_seq) FROM " CS_SUM
        " s WHERE CAST(:from_summary AS INTEGER) = 1 AND s.user_id = :user_id7 AND s.conversation_id = :id7"
        " AND s.covers_through_seq < (SELECT last_seq FROM conv)), 0))"
        " AND seq < (SELECT last_seq FROM conv)"
        " UNION ALL SELECT " CS_MSG_READ ", NULL FROM " CS_MSG " WHERE CAST(:keep_system AS INTEGER) = 1"
        // :prefix_cap (a bound value the planner sees) keeps this arm an index range scan; a
        // longer prefix is loaded by msg_system_prefix.
        " AND user_id = :user_id4 AND conversation_id = :id4 AND seq <= :prefix_cap"
        " AND seq <= LEAST((SELECT last_seq FROM conv) - :n2,"
        " COALESCE((SELECT f.seq FROM " CS_MSG " f WHERE f.user_id = :user_id5 AND f.conversation_id = :id5"
        " AND f.role NOT IN ('system', 'developer') ORDER BY f.seq LIMIT 1) - 1, (SELECT last_seq FROM conv)))"
        // The last column, on the new message's row only: 1 if the statement's snapshot is
        // current — its conversation row is the one locked, but for this UPDATE. Otherwise other
        // writers (appends, or a truncate that the snapshot's rows predate) committed while the
        // statement waited for the lock.
        " UNION ALL SELECT " CS_MSG_READ ", (SELECT CASE WHEN c.last_seq = conv.last_seq - 1 AND"
        " c.truncations = conv.truncations THEN 1 ELSE 0 END FROM " CS_CONV " c, conv WHERE c.user_id = :user_id6"
        " AND c.id = :id6) FROM ins"
        // The latest summary, shaped as a row: seq 0, covers_through_seq in token_count, flag 2.
        " UNION ALL (SELECT CAST(0 AS BIGINT), 'system', s.content, NULL, NULL, NULL,"
        " s.metadata_json, s.covers_through_seq, NULL, NULL, s.created_at, 2 FROM " CS_SUM " s"
        " WHERE CAST(:from_summary2 AS INTEGER) = 1 AND s.user_id = :user_id8 AND s.conversation_id = :id8"
        " AND s.covers_through_seq < (SELECT last_seq FROM conv) ORDER BY s.covers_through_seq DESC LIMIT 1)"
        // (A summary through the new message cannot exist; through a regenerated one it is not used.)
        " ORDER BY 1";
    s.turn_create =
        "WITH conv AS (INSERT INTO " CS_CONV " (" CS_CONV_COLS ", create_key) VALUES"
        " (:id, :user_id, :title, :conv_metadata, 1, :now, :now2, :external_key, NULL, NULL, :create_key) RETURNING id)"
        " INSERT INTO " CS_MSG " (user_id, conversation_id, seq, role, content, content_parts_json, metadata_json,"
        " idempotency_key, created_at, run_owner, run_started_at) SELECT :user_id2, id, 1, 'user', :content, :parts,"
        " :metadata_json, :key, :now3,"
        " :run_owner, :run_started FROM conv WHERE " CS_DEFER_FLUSH " IS NOT NULL RETURNING " CS_MSG_READ;
    return s;
}

} // namespace

std::string pg_turn_finish(std::size_t k, bool with_usage) {
    std::string values;
    for (std::size_t i = 0; i < k; ++i) {
        const std::string n = std::to_string(i);
        values += (i ? ", (" : "(") + ("CAST(:ord" + n + " AS BIGINT), CAST(:role" + n + " AS TEXT), CAST(:content" + n +
                                       " AS TEXT), CAST(:name" + n + " AS TEXT), CAST(:tool_calls" + n +
                                       " AS TEXT), CAST(:tool_call_id" + n + " AS TEXT), CAST(:metadata" + n +
                                       " AS TEXT), CAST(:tokens" + n + " AS BIGINT), CAST(:key" + n +
                                       " AS TEXT), CAST(:parts" + n + " AS TEXT))");
    }
    return "WITH conv AS (UPDATE " CS_CONV " SET last_seq = last_seq + :k, updated_at = :now"
           // The EXISTS reads the statement's snapshot: if a truncate committed while the UPDATE
           // waited for the row lock, the locked row's truncations differ and nothing is stored.
           " WHERE user_id = :user_id AND id = :id AND EXISTS (SELECT 1 FROM " CS_MSG " u WHERE " CS_TURN_USER ")"
           " AND truncations = (SELECT c.truncations FROM " CS_CONV " c WHERE c.user_id = :tr_user AND c.id = :tr_id)"
           " RETURNING last_seq)" +
           std::string(with_usage ? ", used AS (INSERT INTO " CS_USAGE " (user_id, id, conversation_id, seq, " CS_USAGE_FIELDS
                                    ", created_at) SELECT :u_user, :u_id, :u_conv, conv.last_seq, CAST(:model AS TEXT),"
                                    " CAST(:prompt AS BIGINT), CAST(:completion AS BIGINT), CAST(:cached AS BIGINT),"
                                    " CAST(:reasoning AS BIGINT), :u_now FROM conv)"
                                  : "") +
           " INSERT INTO " CS_MSG " (user_id, " CS_MSG_COLS ") SELECT :user_id2, :id2, conv.last_seq - :k2 + v.ord,"
           " v.role, v.content, v.name, v.tool_calls, v.tool_call_id, v.metadata, v.tokens, v.key, v.parts, :now2"
           " FROM conv, (VALUES " + values + ") AS v(ord, role, content, name, tool_calls, tool_call_id, metadata,"
           " tokens, key, parts) RETURNING seq";
}

const SqlText& sqlite_sql() {
    static const SqlText sql = sqlite_text();
    return sql;
}

const SqlText& postgresql_sql() {
    static const SqlText sql = postgresql_text();
    return sql;
}

const SqlText& sql_for(Dialect dialect) {
    switch (dialect) {
    case Dialect::sqlite: return sqlite_sql();
    case Dialect::postgresql: return postgresql_sql();
    case Dialect::mysql: return mysql_sql();
    }
    throw std::logic_error("convstate: unknown dialect");
}

} // namespace convstate::detail
