#pragma once
/** @file archive.hpp Export and import of whole conversations, one JSON line each (docs/export-format.md). */

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "convstate/database.hpp"

namespace convstate {

/** Which conversations Archive::export_conversations writes. */
struct ExportOptions {
    std::optional<std::string> user_id; ///< only this user's (default: every user's)
    std::int64_t updated_since_us = 0;  ///< only those updated at or after this time (UTC microseconds)
};

/** What Archive::import_conversation did with one line. */
struct ImportResult {
    std::string user_id;           ///< the conversation's user
    std::string conversation_id;   ///< and id
    bool imported = false;         ///< false: a conversation with this user and id was there already (left as it is)
    std::int64_t messages = 0;     ///< messages stored (0 when not imported)
    /** Member-wise equality. */
    bool operator==(const ImportResult&) const = default;
};

/** Moves whole conversations out of and into a database as JSON Lines: one line per
 *  conversation holding its fields, its messages (OpenAI chat format, with seqs, timestamps and
 *  idempotency keys), its summaries and its usage rows. Exporting and importing into an empty
 *  database reproduces every stored field byte for byte. The format is documented in
 *  docs/export-format.md.
 *
 *  Thread-safety: a cheap handle over a shared Database; safe to use from many threads. */
class CONVSTATE_API Archive {
public:
    /** An archive over db (a shared handle); touches no database. */
    explicit Archive(Database db) : db_(std::move(db)) {}

    /** Calls write once per conversation with its line (JSON text, no newline), ordered by user
     *  and id; returns how many. Reads one conversation at a time, so memory stays at the size of
     *  the largest conversation however large the database. Each line is a consistent snapshot
     *  of its conversation (messages 1..last_seq); conversations changed while the export runs
     *  appear as they were when it reached them. An exception thrown by write stops the export
     *  and propagates. Without options.user_id it reads across every user (on Citus, multi-shard
     *  reads). @throws InvalidArgument ("user_id", "updated_since": negative). */
    std::int64_t export_conversations(const ExportOptions& options,
                                      const std::function<void(std::string_view line)>& write) const;

    /** Stores one exported line in one transaction: everything of the conversation, or nothing.
     *  Idempotent: if the user already has a conversation with that id, nothing is written and
     *  ImportResult::imported is false (so importing a file twice stores it once). Every field is
     *  checked first, as an append would check it; errors name the field by its path in the line
     *  ("conversation.title", "messages[3].role", "summaries[0].covers_through_seq").
     *  @throws InvalidArgument (nothing written), StorageError. */
    ImportResult import_conversation(std::string_view line) const;

private:
    Database db_;
};

} // namespace convstate
