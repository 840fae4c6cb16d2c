#pragma once
// All SQL text, per dialect, in one place (src/sql.cpp). Every value is a bound parameter.

#include <cstddef>
#include <string>
#include <vector>

#include "convstate/database.hpp"

namespace convstate::detail {

struct Migration {
    int version;
    std::vector<std::string> statements;
};

/** Rows per statement of SqlText::msg_insert_many. */
inline constexpr int msg_insert_rows = 50;

struct SqlText {
    std::string begin_write;     // SQLite takes the write lock up front (BEGIN IMMEDIATE)
    std::string migrate_lock;    // serialises concurrent migrate() (empty: begin_write suffices)
    std::string migrate_unlock;  // ends a session-level migrate_lock (without transactional DDL)
    std::string schema_table_exists;
    std::string create_schema_table;
    std::string max_schema_version;
    std::string insert_schema_version;
    std::vector<Migration> migrations;
    // Citus (PostgreSQL only; empty elsewhere): after the migrations, every table is distributed
    // by user_id, co-located with the conversations (see DatabaseImpl::distribute).
    std::string citus_installed;  // 1 when the citus extension is in this database
    std::string citus_distributed; // 1 when table :t is distributed
    std::string citus_distribute; // distributes table :t by user_id, co-located with :with
    std::vector<std::string> distributed_tables; // in order: the first is the co-location anchor

    std::string conv_insert;
    std::string conv_get;
    std::string conv_list;
    std::string conv_rename;
    std::string conv_set_metadata;
    std::string conv_delete;
    std::string conv_purge_page, conv_purge_page_user, conv_purge_delete; // ConversationStore::purge
    std::string totals_conversations, totals_messages;                    // ConversationStore::totals
    std::string export_page, export_page_user, export_conversation, export_usage, import_conversation; // Archive
    std::string msg_insert_many; // msg_insert with msg_insert_rows rows
    std::string conv_delete_messages;
    std::string user_delete_conversations;
    std::string user_delete_messages;
    std::string conv_exists;
    std::string conv_by_create_key;
    std::string conv_set_active;
    std::string conv_clear_active;

    std::string conv_lock;       // last_seq under the conversation's row lock
    std::string conv_lock_truncate; // conv_lock, also excluding summary writers
    std::string conv_summary_guard; // last_seq; the row may not be truncated or deleted meanwhile
    std::string fork_messages;  // copy messages 1..:at into conversation :fork_id
    std::string fork_summaries; // copy the summaries covering at most :at
    std::string conv_forks;     // the conversations forked from :id
    std::string conv_bump;
    std::string conv_truncate_to; // last_seq moved back, truncations counted
    std::string conv_reserve;  // lock the row and allocate :n seqs in one statement
    std::string conv_reserve_turn; // conv_reserve, if the turn's user message is there (CS_TURN_USER); single writer only
    std::string msg_turn_user;     // 1 if the turn's user message is there, else 0
    std::string msg_insert_run;    // msg_insert, with the run's owner and start (a turn's user message)
    std::string msg_by_key;
    std::string msg_insert;
    std::string msg_all;
    std::string msg_last;
    std::string msg_after;
    std::string msg_before;
    std::string msg_range;
    std::string msg_system_prefix;
    std::string msg_count;
    std::string msg_role_at;      // the role of the message at :seq, and 1 if it carries tool calls
    std::string msg_delete_after; // truncate: messages with seq > :after
    std::string msg_run_state; // owner and start of a keyed turn's run
    std::string sum_upsert;
    std::string sum_all;
    std::string msg_window_chunk; // the latest summary at or below :hi, and the messages in (max(:lo, its seq), :hi]
    std::string sum_delete_after; // truncate: summaries covering seqs > :after
    std::string conv_delete_summaries;
    std::string usage_insert;
    std::string usage_by_conversation;
    std::string usage_since;
    std::string conv_delete_usage;
    std::string user_delete_usage;
    std::string user_delete_summaries;
    std::string msg_claim_run;
    std::string msg_set_run;   // claim the user message at :seq (a regenerate turn)
    std::string msg_end_run;

    // PostgreSQL only (empty on SQLite): the turn in two autocommit statements.
    std::string turn_begin;  // bump last_seq, insert the user message, return the first window chunk
    std::string turn_create; // create the conversation with its first (user) message
};

/** PostgreSQL: store k agent messages after the conversation's last_seq in one statement, if
 *  the turn's user message is there (a turn token names it) and no truncate committed while the
 *  statement waited for the row lock — and, with_usage, the reply's usage row. No row: the
 *  caller takes the locked path. */
std::string pg_turn_finish(std::size_t k, bool with_usage);

/** What every dialect shares (the version 1… migrations and most statements), for the
 *  dialects' own texts to start from. */
SqlText common_sql();
const SqlText& sqlite_sql();
const SqlText& postgresql_sql();
const SqlText& mysql_sql();
const SqlText& sql_for(Dialect dialect);

} // namespace convstate::detail
