#pragma once
/** @file conversation_store.hpp Conversations, always scoped by user. */

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>
#include <string_view>

#include "convstate/database.hpp"
#include "convstate/types.hpp"

namespace convstate {

/** What ConversationStore::fork takes besides its source; unset fields take the source's. */
struct ForkOptions {
    std::optional<std::string> title;         ///< the fork's title (default: the source's)
    std::optional<std::string> metadata_json; ///< the fork's metadata, a JSON object (default: the source's)
    std::optional<std::string> external_key;  ///< the fork's own external key (default: none)
};

/** What ConversationStore::purge takes besides its cutoff. */
struct PurgeOptions {
    std::optional<std::string> user_id; ///< only this user's conversations (default: every user's)
    std::size_t batch_size = 100;       ///< conversations per transaction, 1..10000
    bool dry_run = false;               ///< count what would be deleted; delete nothing
};

/** What ConversationStore::purge deleted (or, on a dry run, would delete). */
struct PurgeResult {
    std::int64_t conversations = 0; ///< conversations deleted
    std::int64_t messages = 0;      ///< their messages
    /** Member-wise equality. */
    bool operator==(const PurgeResult&) const = default;
};

/** What a whole database holds (ConversationStore::totals). */
struct StoreTotals {
    std::int64_t users = 0;         ///< users with at least one conversation
    std::int64_t conversations = 0; ///< conversations
    std::int64_t messages = 0;      ///< messages
    /** Member-wise equality. */
    bool operator==(const StoreTotals&) const = default;
};

/** Called by ConversationStore::purge after each batch with the totals so far. */
using PurgeProgress = std::function<void(const PurgeResult&)>;

/** Create, read, list, rename, annotate and delete conversations. Every call takes the owning
 *  user's id; a conversation of another user behaves exactly like a missing one (NotFound, same
 *  message).
 *
 *  Thread-safety: a cheap handle over a shared Database; safe to use from many threads. */
class CONVSTATE_API ConversationStore {
public:
    /** A store over db (a shared handle); touches no database. */
    explicit ConversationStore(Database db) : db_(std::move(db)) {}

    /** Creates a conversation: with a new random id, or, with spec.external_key, the id derived
     *  from the user and the key. @throws InvalidArgument (title, metadata, external_key),
     *  Conflict (the user has a conversation with this external key). */
    Conversation create(std::string_view user_id, const NewConversation& spec = {}) const;

    /** The user's conversation with spec.external_key (required), created from spec if there is
     *  none. Any number of callers racing with one new key get one conversation.
     *  @throws InvalidArgument (external_key missing or invalid, title, metadata). */
    GetOrCreateResult get_or_create(std::string_view user_id, const NewConversation& spec) const;

    /** @throws NotFound if missing or not the user's. */
    Conversation get(std::string_view user_id, std::string_view conversation_id) const;

    /** The user's conversation with this external key. @throws InvalidArgument
     *  ("external_key"), NotFound. */
    Conversation get_by_key(std::string_view user_id, std::string_view external_key) const;

    /** Most recently updated first, keyset-paginated. Pages stay consistent under inserts;
     *  a conversation updated while paging may move to an earlier page.
     *  @throws InvalidArgument for a limit outside 1..100 or a malformed cursor. */
    ConversationPage list(std::string_view user_id, const ListOptions& options = {}) const;

    /** Sets the title and returns the updated conversation. */
    Conversation rename(std::string_view user_id, std::string_view conversation_id,
                        std::string_view title) const;

    /** Replaces the metadata (a JSON object) and returns the updated conversation. */
    Conversation set_metadata(std::string_view user_id, std::string_view conversation_id,
                              std::string_view metadata_json) const;

    /** Forks the conversation: a new conversation holding copies of its messages 1..at_seq (seqs
     *  1..at_seq, idempotency keys included — they are scoped to their conversation) and of the
     *  summaries that cover at most at_seq, with forked_from = {conversation_id, at_seq}. The copy
     *  is one statement on the server. From then on the fork is an ordinary conversation: dense
     *  seqs from at_seq + 1, its own keys, deletable independently of its source and vice
     *  versa. Edit a message: fork before it and run the turn there; regenerate a reply: fork at
     *  its user message and run a TurnRequest::regenerate turn. A fork never waits for or blocks
     *  a turn on its source (PostgreSQL: it holds a KEY SHARE lock on the source, as add_summary).
     *  @throws InvalidArgument ("at_seq": negative, past the last message, or inside a tool-call
     *          group — message at_seq + 1 is a tool result; "title", "metadata",
     *          "external_key"), NotFound, Conflict (external_key taken). */
    Conversation fork(std::string_view user_id, std::string_view conversation_id, std::int64_t at_seq,
                      const ForkOptions& options = {}) const;

    /** The conversations forked from this one, oldest first. @throws NotFound (a fork of a
     *  deleted source stays listed by list(), with its forked_from). */
    std::vector<Conversation> forks(std::string_view user_id, std::string_view conversation_id) const;

    /** Sums of the usage recorded by the conversation's turns (AgentReply::usage). Usage stays
     *  recorded when a truncate removes its reply (the tokens were spent) and goes with the
     *  conversation when it is deleted; a fork starts with none. @throws NotFound. */
    UsageReport usage(std::string_view user_id, std::string_view conversation_id) const;

    /** Sums of the user's usage recorded at or after since_us (UTC microseconds), over all their
     *  conversations. */
    UsageReport usage_since(std::string_view user_id, std::int64_t since_us) const;

    /** Deletes the conversation and all its messages in one transaction. @throws NotFound. */
    void remove(std::string_view user_id, std::string_view conversation_id) const;

    /** Deletes every conversation and message of the user; returns the number of conversations. */
    std::size_t remove_all(std::string_view user_id) const;

    /** Counts across every user (an operator's view: it reads whole tables, so keep it off
     *  the request path). */
    StoreTotals totals() const;

    /** Retention: hard-deletes every conversation (of options.user_id, or of every user) not
     *  updated since older_than_us (UTC microseconds; updated_at_us < older_than_us), with its
     *  messages, summaries and usage rows. Works in batches of options.batch_size
     *  conversations, one short write transaction each, so no lock is held for long and a
     *  purge cut short keeps what it did. Each conversation goes whole, in one transaction, and
     *  only if it is still old when its transaction deletes it: one that receives a turn or an
     *  append meanwhile is kept, and a turn that comes after its deletion fails with NotFound —
     *  never a half-deleted conversation. Without options.user_id it reads across every user
     *  (on Citus, a multi-shard read; each deletion stays single-shard).
     *  progress, if set, is called after each batch with the totals so far.
     *  @throws InvalidArgument ("older_than": negative; "batch_size": outside 1..10000;
     *          "user_id"). */
    PurgeResult purge(std::int64_t older_than_us, const PurgeOptions& options = {},
                      const PurgeProgress& progress = {}) const;

private:
    Database db_;
};

} // namespace convstate
