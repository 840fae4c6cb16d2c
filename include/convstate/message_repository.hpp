#pragma once
/** @file message_repository.hpp Appending and loading messages in seq order. */

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "convstate/database.hpp"
#include "convstate/types.hpp"

namespace convstate {

/** Options of an append. */
struct AppendOptions {
    /** Compare-and-append: store only if the conversation's last_seq equals this, else Conflict. */
    std::optional<std::int64_t> expected_last_seq;
};

/** Appends and loads the messages of a conversation.
 *
 *  Order is seq: each appended message gets the next dense seq (1, 2, 3…) of its conversation,
 *  allocated inside the appending transaction under the conversation's row lock, so concurrent
 *  writers in any number of processes never produce a duplicate, a gap or a reordering.
 *  A message with an idempotency key that the conversation already holds is not stored again:
 *  the stored message is returned instead. Messages are deleted only from the end (truncate) or
 *  with their conversation, so seqs stay dense.
 *
 *  Thread-safety: a cheap handle over a shared Database; safe to use from many threads. */
class CONVSTATE_API MessageRepository {
public:
    /** A repository over db (a shared handle); touches no database. */
    explicit MessageRepository(Database db) : db_(std::move(db)) {}

    /** Appends one message; returns it as stored (or as previously stored, for a known key).
     *  @throws InvalidArgument, NotFound, Conflict (expected_last_seq), StorageError,
     *          OutcomeUnknown (connection lost during COMMIT and the message has no key). */
    Message append(std::string_view user_id, std::string_view conversation_id,
                   const Message& message, const AppendOptions& options = {}) const;

    /** Appends several messages atomically, in order, with consecutive seqs. Messages whose
     *  idempotency key is already stored are returned as stored and not appended again. */
    std::vector<Message> append_batch(std::string_view user_id, std::string_view conversation_id,
                                      const std::vector<Message>& messages,
                                      const AppendOptions& options = {}) const;

    /** Every message, in seq order. */
    std::vector<Message> load_all(std::string_view user_id, std::string_view conversation_id) const;

    /** The last n messages, in seq order; reads only those rows. */
    std::vector<Message> load_last(std::string_view user_id, std::string_view conversation_id,
                                   std::size_t n) const;

    /** Up to limit messages with seq > after_seq, in seq order. limit: 1..10000. */
    std::vector<Message> load_after(std::string_view user_id, std::string_view conversation_id,
                                    std::int64_t after_seq, std::size_t limit) const;

    /** Up to limit messages with seq < before_seq (the ones just before it), in seq order. */
    std::vector<Message> load_before(std::string_view user_id, std::string_view conversation_id,
                                     std::int64_t before_seq, std::size_t limit) const;

    /** Undo: deletes every message with seq > after_seq in one transaction and moves the
     *  conversation's last_seq back to after_seq, so the next message gets seq after_seq + 1 and
     *  seqs stay dense. Returns how many messages this call removed (0 when after_seq >= last_seq:
     *  nothing to do). The idempotency keys of removed messages are forgotten with them: a retried
     *  turn whose messages were removed stores them again. A split turn whose user message was
     *  removed cannot be completed (NotFound).
     *  With expected_last_seq set, it truncates only if the conversation's last_seq equals it,
     *  else Conflict — so K callers undoing "the last exchange" at once remove it once.
     *  @throws InvalidArgument ("after_seq": negative, or inside a tool-call group — the first
     *          removed message would be a tool result whose call is kept; "expected_last_seq":
     *          negative), NotFound, Conflict, StorageError, OutcomeUnknown (with
     *          expected_last_seq: the connection was lost during COMMIT). */
    std::int64_t truncate(std::string_view user_id, std::string_view conversation_id, std::int64_t after_seq,
                          std::optional<std::int64_t> expected_last_seq = std::nullopt) const;

    /** Stores a summary of messages 1..covers_through_seq (a checkpoint: nothing is deleted).
     *  Windows from_summary then start from the latest summary (see HistoryWindow). A summary
     *  with the same covers_through_seq is replaced. Writing one never moves last_seq and never
     *  waits for or blocks a turn or an append on PostgreSQL (SQLite serialises all writers), so
     *  it never invalidates an expected_last_seq. Returns the summary as stored.
     *  @throws InvalidArgument ("covers_through_seq": below 1, past the last message, or inside
     *          a tool-call group — message covers_through_seq + 1 is a tool result; "content":
     *          empty or invalid; "metadata"), NotFound; nothing is stored. */
    Summary add_summary(std::string_view user_id, std::string_view conversation_id, std::int64_t covers_through_seq,
                        std::string_view content, std::string_view metadata_json = "{}") const;

    /** The conversation's summaries, by covers_through_seq. A truncate removes those that cover
     *  a removed message. */
    std::vector<Summary> summaries(std::string_view user_id, std::string_view conversation_id) const;

    /** Number of messages in the conversation. */
    std::int64_t count(std::string_view user_id, std::string_view conversation_id) const;

private:
    Database db_;
};

} // namespace convstate
