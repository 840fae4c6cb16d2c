#pragma once
/** @file types.hpp Plain value types: messages, conversations, pages, limits. */

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "convstate/export.hpp"

namespace convstate {

/** Chat roles (OpenAI chat format). `developer` is OpenAI's newer name for instructions: it is
 *  accepted wherever `system` is, and kept with the leading system messages of a window. */
enum class Role { system, user, assistant, tool, developer };

/** system or developer: the roles of instructions (a window's kept prefix). */
constexpr bool is_instruction(Role role) noexcept { return role == Role::system || role == Role::developer; }

/** "system", "user", "assistant", "tool" or "developer". */
CONVSTATE_API std::string_view to_string(Role role) noexcept;
/** Parses a role name. @throws InvalidArgument naming field "role" for anything else. */
CONVSTATE_API Role role_from_string(std::string_view name);

/** One tool call of an assistant message, OpenAI format:
 *  `{"id", "type": "function", "function": {"name", "arguments"}}`.
 *  `arguments` is JSON text (as the model produced it) and must parse as JSON. */
struct ToolCall {
    std::string id;                ///< the call's id, answered by a tool message's tool_call_id
    std::string type = "function"; ///< "function", the only type accepted
    std::string name;              ///< the function's name
    std::string arguments = "{}";  ///< the arguments as JSON text, kept exactly as given
    /** Member-wise equality. */
    bool operator==(const ToolCall&) const = default;
};

/** A message. On input only the first block of fields is read; the library fills in
 *  conversation_id, seq and created_at_us when it stores the message. */
struct Message {
    Role role = Role::user;                    ///< who wrote it
    std::string content;                       ///< the text (UTF-8; may be empty)
    /** Content as an OpenAI content-part array instead of text: JSON text such as
     *  `[{"type":"text","text":"what is this?"},{"type":"image_url","image_url":{"url":"https://…"}}]`
     *  (parts: text; image_url with an https or data URL; input_audio {data, format}; file
     *  {file_id or file_data, filename?}; only user messages carry parts other than text).
     *  Stored as compact JSON, every string byte for byte; `content` must then be empty. The
     *  message's size limit (max_content_bytes) applies to it; the token estimate counts its text
     *  parts. */
    std::optional<std::string> content_parts_json;
    std::optional<std::string> name;          ///< optional participant / tool name
    std::vector<ToolCall> tool_calls;          ///< assistant messages only
    std::optional<std::string> tool_call_id;   ///< required on (and only on) tool messages
    std::string metadata_json = "{}";          ///< a JSON object; stored normalised (compact)
    std::optional<std::int64_t> token_count;   ///< known token count, if any (>= 0)
    std::optional<std::string> idempotency_key;///< appending the same key again stores nothing

    std::string conversation_id; ///< set by the library
    std::int64_t seq = 0;        ///< 1, 2, 3… per conversation, dense; set by the library
    std::int64_t created_at_us = 0; ///< UTC microseconds since the epoch; metadata, never the order

    /** Member-wise equality (every field, including those the library sets). */
    bool operator==(const Message&) const = default;
};

/** Where a fork began: messages 1..seq of conversation_id (which may since have been deleted). */
struct ForkOrigin {
    std::string conversation_id; ///< the source conversation
    std::int64_t seq = 0;        ///< the fork holds copies of its messages 1..seq
    /** Member-wise equality. */
    bool operator==(const ForkOrigin&) const = default;
};

/** A conversation, owned by exactly one user. */
struct Conversation {
    std::string id;                 ///< random (or, with an external key, derived) id, assigned when it is created
    std::string user_id;            ///< the owning user
    std::string title;              ///< free text; may be empty
    std::string metadata_json = "{}"; ///< a JSON object; stored normalised (compact)
    std::int64_t last_seq = 0;      ///< seq of the newest message; doubles as the version
    std::int64_t created_at_us = 0; ///< UTC microseconds since the epoch
    std::int64_t updated_at_us = 0; ///< UTC microseconds since the epoch; the list order
    std::optional<std::string> external_key; ///< the host's own id for it, if it has one (NewConversation)
    std::optional<ForkOrigin> forked_from;   ///< set on a fork (ConversationStore::fork)
    /** Member-wise equality. */
    bool operator==(const Conversation&) const = default;
};

/** A summary checkpoint: it stands for messages 1..covers_through_seq of its conversation in a
 *  history window (HistoryWindow::from_summary). The messages themselves stay. */
struct Summary {
    std::string conversation_id;       ///< set by the library
    std::int64_t covers_through_seq = 0; ///< the last message it summarises
    std::string content;               ///< the summary text (UTF-8, not empty)
    std::string metadata_json = "{}";  ///< a JSON object; stored normalised (compact)
    std::int64_t created_at_us = 0;    ///< set by the library
    /** Member-wise equality. */
    bool operator==(const Summary&) const = default;
};

/** Tokens a model reported for one reply (OpenAI's usage fields); every field optional. */
struct Usage {
    std::optional<std::string> model;              ///< the model that produced the reply
    std::optional<std::int64_t> prompt_tokens;     ///< input tokens (>= 0)
    std::optional<std::int64_t> completion_tokens; ///< output tokens (>= 0)
    std::optional<std::int64_t> cached_tokens;     ///< input tokens served from a prompt cache (>= 0)
    std::optional<std::int64_t> reasoning_tokens;  ///< output tokens spent on reasoning (>= 0)
    /** Member-wise equality. */
    bool operator==(const Usage&) const = default;
};

/** Sums of recorded usage: per model (model unset: replies that named none), and in total. */
struct UsageTotals {
    std::optional<std::string> model;  ///< in UsageReport::by_model: the model; in total: unset
    std::int64_t replies = 0;          ///< replies that recorded usage
    std::int64_t prompt_tokens = 0;    ///< sum (unset fields count 0)
    std::int64_t completion_tokens = 0; ///< sum
    std::int64_t cached_tokens = 0;    ///< sum
    std::int64_t reasoning_tokens = 0; ///< sum
    /** Member-wise equality. */
    bool operator==(const UsageTotals&) const = default;
};

/** What ConversationStore::usage and usage_since return. */
struct UsageReport {
    UsageTotals total;                 ///< everything
    std::vector<UsageTotals> by_model; ///< one entry per model, by model name (unnamed first)
    /** Member-wise equality. */
    bool operator==(const UsageReport&) const = default;
};

/** What ConversationStore::create takes. */
struct NewConversation {
    std::string title;                ///< may be empty
    std::string metadata_json = "{}"; ///< a JSON object
    /** The host's own id for the conversation — a framework's session id, a chat app's thread
     *  id — unique per user (at most max_id_bytes, no control characters). A conversation with
     *  an external key has a derived id: the UUIDv5 of its user id and key, so every instance
     *  finds it without a lookup, and two creators racing with one key meet on one row. */
    std::optional<std::string> external_key;
};

/** What ConversationStore::get_or_create returns. */
struct GetOrCreateResult {
    Conversation conversation; ///< the conversation carrying the key
    bool created = false;      ///< this call created it
};

/** Keyset pagination request: most recently updated first. */
struct ListOptions {
    std::string cursor; ///< empty for the first page, else a previous page's next_cursor
    int limit = 20;     ///< 1..100
};

/** One page of conversations; next_cursor is empty on the last page. */
struct ConversationPage {
    std::vector<Conversation> items; ///< most recently updated first
    std::string next_cursor;         ///< pass as ListOptions::cursor for the next page
};

/** Input limits enforced before anything is written (bytes of UTF-8). */
struct Limits {
    std::size_t max_user_id_bytes = 255;       ///< user ids
    std::size_t max_id_bytes = 255;            ///< conversation ids, tool call ids, idempotency keys, names
    std::size_t max_title_bytes = 1024;        ///< conversation titles
    std::size_t max_content_bytes = 8u << 20;  ///< 8 MiB
    std::size_t max_metadata_bytes = 256u << 10; ///< metadata JSON text; 256 KiB
    std::size_t max_tool_calls = 128;          ///< tool calls per message
    std::size_t max_batch = 1000;              ///< messages per append_batch
};

} // namespace convstate
