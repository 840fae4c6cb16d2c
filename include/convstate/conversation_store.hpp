#pragma once
/** @file conversation_store.hpp Conversations, always scoped by user. */

#include <cstddef>
#include <string>
#include <string_view>

#include "convstate/database.hpp"
#include "convstate/types.hpp"

namespace convstate {

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

    /** Deletes the conversation and all its messages in one transaction. @throws NotFound. */
    void remove(std::string_view user_id, std::string_view conversation_id) const;

    /** Deletes every conversation and message of the user; returns the number of conversations. */
    std::size_t remove_all(std::string_view user_id) const;

private:
    Database db_;
};

} // namespace convstate
