#pragma once
// Reading and writing message and conversation rows.

#include <string>
#include <vector>

#include "convstate/types.hpp"
#include "db.hpp"

namespace convstate::detail {

/** Receives one selected message row (columns in sql_tables.hpp's CS_MSG_READ order) of the
 *  conversation it is constructed with: reads do not return the id they select by. */
struct MessageRow {
    explicit MessageRow(std::string conversation) : conversation_id(std::move(conversation)) {}

    std::string conversation_id, role, content, name, tool_calls_json, tool_call_id, metadata_json, key, parts;
    long long seq = 0, token_count = 0, created_at = 0;
    soci::indicator name_ind{}, tool_calls_ind{}, tool_call_id_ind{}, token_count_ind{}, key_ind{}, parts_ind{};

    void bind(Stmt& st);
    /** Moves the row into m, a default-constructed Message (the next fetch refills the row). */
    void take_into(Message& m);
    Message take_message() {
        Message m;
        take_into(m);
        return m;
    }
    /** Appends the row to out, constructed in place. */
    void take_into(std::vector<Message>& out) { take_into(out.emplace_back()); }
};

/** Receives one selected conversation row (CS_CONV_COLS order). */
struct ConversationRow {
    std::string id, user_id, title, metadata_json, external_key, forked_from_id;
    long long last_seq = 0, created_at = 0, updated_at = 0, forked_from_seq = 0;
    soci::indicator external_key_ind{}, forked_from_id_ind{}, forked_from_seq_ind{};

    void bind(Stmt& st);
    Conversation to_conversation() const;
};

/** Receives one selected summary row (sql.cpp's CS_SUM_COLS order). */
struct SummaryRow {
    std::string conversation_id, content, metadata_json;
    long long covers = 0, created_at = 0;

    void bind(Stmt& st);
    Summary to_summary() const;
};

/** At most this many rows are reserved for ahead of a read (a larger result grows the vector).
 *  Seqs are dense, so a seq range's size is its row count: reserving it wastes nothing. */
inline constexpr long long max_reserved_rows = 65536;

/** Executes st (already bound to row) and collects every row; `expected` rows (at most
 *  max_reserved_rows) are reserved for first. */
std::vector<Message> fetch_messages(Stmt& st, MessageRow& row, long long expected = 0);

/** Binds a message's own fields, in the order of sql.cpp's CS_MSG_FIELDS (role, content, name,
 *  tool_calls_json, tool_call_id, metadata_json, token_count, idempotency_key, content_parts_json):
 *  the one binder
 *  of every statement that writes messages. */
void use_message_fields(Stmt& st, const Message& m);

/** Binds a usage row's own fields, in the order of sql_tables.hpp's CS_USAGE_FIELDS. */
void use_usage_fields(Stmt& st, const Usage& u);

/** Inserts one message row (message already validated). */
void insert_message(DatabaseImpl& db, soci::session& session, const std::string& user_id, const Message& message);

} // namespace convstate::detail
