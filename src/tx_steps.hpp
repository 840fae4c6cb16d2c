#pragma once
// The transaction steps shared by the repositories and the orchestrator: writes, and the reads
// they need (a key lookup, a range). Each runs inside a transaction the caller opened with
// DatabaseImpl::run.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "convstate/types.hpp"
#include "db.hpp"

namespace convstate::detail {

/** A validated conversation, not yet stored (new id, timestamps now). field_prefix names the
 *  spec's fields in errors ("" or "new_conversation."). */
Conversation make_conversation(const DatabaseImpl& db, std::string_view user_id, const NewConversation& spec,
                               const std::string& field_prefix = {});

/** Inserts c's row as it is (last_seq, forked_from included). */
void insert_conversation(DatabaseImpl& db, soci::session& s, const Conversation& c,
                         const std::optional<std::string>& create_key);

/** The conversation's row, locked until the transaction ends (serialising its appenders). */
struct LockedConversation {
    long long last_seq = 0;
    std::optional<std::string> active_turn;
    long long active_since = 0;
};
/** for_truncate: also excludes summary writers (which appenders do not). @throws NotFound. */
LockedConversation lock_conversation(DatabaseImpl& db, soci::session& s, const std::string& user,
                                     const std::string& id, bool for_truncate = false);

bool conversation_exists(DatabaseImpl& db, soci::session& s, const std::string& user, const std::string& id);

std::optional<std::string> find_conversation_by_create_key(DatabaseImpl& db, soci::session& s,
                                                           const std::string& user, const std::string& key);

std::optional<Message> find_by_key(DatabaseImpl& db, soci::session& s, const std::string& user,
                                   const std::string& id, const std::string& key);

/** Appends validated messages under the lock: messages whose idempotency key is stored come
 *  back as stored; the others get seqs after conv.last_seq (which is advanced). A replay of the
 *  whole batch writes nothing and ignores expected_last_seq. @throws Conflict. */
std::vector<Message> append_locked(DatabaseImpl& db, soci::session& s, const std::string& user,
                                   const std::string& id, LockedConversation& conv,
                                   const std::vector<Message>& batch,
                                   std::optional<std::int64_t> expected_last_seq = std::nullopt);

/** Appends validated messages in the caller's transaction. Without idempotency keys and
 *  expected_last_seq, reserve_seqs locks the row and allocates the seqs; otherwise the
 *  row is locked first and append_locked checks keys and the expected seq under the lock.
 *  @throws NotFound, Conflict. */
std::vector<Message> append(DatabaseImpl& db, soci::session& s, const std::string& user, const std::string& id,
                            const std::vector<Message>& batch,
                            std::optional<std::int64_t> expected_last_seq = std::nullopt);

/** Allocates n (>= 1) seqs after the conversation's last_seq, locking its row until the
 *  transaction ends (sql.conv_reserve); returns the new last_seq, or nullopt when the user has
 *  no such conversation. */
std::optional<long long> reserve_seqs(DatabaseImpl& db, soci::session& s, const std::string& user,
                                      const std::string& id, long long n, long long now);

/** Checks that a cut after message `boundary` (0..last_seq: truncate, summary, fork) keeps every
 *  tool-call group whole: message boundary + 1 is not a tool result, and — at the end — message
 *  boundary is not a tool call still waiting for its results. `what` names the operation in the
 *  message ("a summary through 4"). @throws InvalidArgument(field). */
void check_group_boundary(DatabaseImpl& db, soci::session& s, const std::string& user, const std::string& id,
                          long long boundary, long long last_seq, const std::string& field, const std::string& what);

/** Inserts validated messages at the seqs already allocated for them, last_seq - size + 1 ..
 *  last_seq, created at now; returns them as stored. */
std::vector<Message> insert_allocated(DatabaseImpl& db, soci::session& s, const std::string& user,
                                      const std::string& id, const std::vector<Message>& batch, long long last_seq,
                                      long long now);

/** Messages in the seq range (lo, hi], in order. */
std::vector<Message> load_range(DatabaseImpl& db, soci::session& s, const std::string& user,
                                const std::string& id, long long lo, long long hi);

} // namespace convstate::detail
