#pragma once
/** @file error.hpp The convstate exception hierarchy. Nothing from the database driver
 *  escapes the public API untranslated: every failure is a convstate::Error. */

#include <cstdint>
#include <stdexcept>
#include <string>

#include "convstate/export.hpp"

namespace convstate {

/** What went wrong, coarsely; stable across versions (the C ABI maps it one-to-one). */
enum class ErrorKind {
    not_found,        ///< missing, or owned by another user (indistinguishable on purpose)
    invalid_argument, ///< bad input; nothing was written
    conflict,         ///< optimistic-concurrency mismatch or a concurrent run; nothing was written
    storage,          ///< the database failed (after bounded retries of transient errors)
    outcome_unknown,  ///< the connection died during COMMIT of a write without an idempotency key
    agent,            ///< the host's agent callback failed
};

/** Root of every exception convstate throws.
 *  Thread-safety: immutable value; safe to share. */
class CONVSTATE_API Error : public std::runtime_error {
public:
    /** An error of the given kind; message becomes what(). */
    Error(ErrorKind kind, const std::string& message);
    /** What went wrong; each subclass (OutcomeUnknown included) has its own kind. */
    ErrorKind kind() const noexcept { return kind_; }
private:
    ErrorKind kind_;
};

/** The conversation does not exist or belongs to another user. The message is identical in
 *  both cases, so an id's existence is never revealed. */
class CONVSTATE_API NotFound : public Error {
public:
    /** Kind ErrorKind::not_found; message becomes what(). */
    explicit NotFound(const std::string& message);
};

/** Bad input. field() names the offending field (e.g. "user_id", "messages[2].content"). */
class CONVSTATE_API InvalidArgument : public Error {
public:
    /** Kind ErrorKind::invalid_argument; what() is "invalid " + field + ": " + reason. */
    InvalidArgument(std::string field, const std::string& reason);
    /** The offending field's name or path. */
    const std::string& field() const noexcept { return field_; }
private:
    std::string field_;
};

/** A compare-and-append found another last_seq, or a concurrent run was rejected. */
class CONVSTATE_API Conflict : public Error {
public:
    /** Kind ErrorKind::conflict; message becomes what(). */
    explicit Conflict(const std::string& message);
};

/** The database failed. backend_code() is the driver's numeric code where it has one
 *  (SQLite result code), sqlstate() the five-character SQLSTATE where it has one (PostgreSQL). */
class CONVSTATE_API StorageError : public Error {
public:
    /** Kind ErrorKind::storage; message becomes what(). 0 and "" mean no code is known. */
    StorageError(const std::string& message, int backend_code = 0, std::string sqlstate = {});
    /** The driver's numeric code (SQLite result code), or 0 if none. */
    int backend_code() const noexcept { return backend_code_; }
    /** The five-character SQLSTATE (PostgreSQL), or "" if none. */
    const std::string& sqlstate() const noexcept { return sqlstate_; }
protected:
    /** For subclasses with their own kind (OutcomeUnknown). */
    StorageError(ErrorKind kind, const std::string& message, int backend_code, std::string sqlstate);
private:
    int backend_code_;
    std::string sqlstate_;
};

/** The connection was lost while COMMIT was in flight, so the write may or may not be stored.
 *  Raised only for writes without an idempotency key (keyed writes are retried safely).
 *  Re-read before retrying, or use idempotency keys. */
class CONVSTATE_API OutcomeUnknown : public StorageError {
public:
    /** Kind ErrorKind::outcome_unknown, backend_code() 0, sqlstate() "08000" (connection
     *  exception); message becomes what(). */
    explicit OutcomeUnknown(const std::string& message);
};

/** The host's agent failed; what() carries its message. The turn's user message is stored:
 *  conversation_id() and user_seq() say where (the conversation may have been created by this
 *  turn — created() — so a retry without an idempotency key can continue it). */
class CONVSTATE_API AgentError : public Error {
public:
    /** Kind ErrorKind::agent; message (the agent's) becomes what(). The other arguments say where
     *  the turn's user message is stored ("" and 0: not known). */
    explicit AgentError(const std::string& message, std::string conversation_id = {}, std::int64_t user_seq = 0,
                        bool created = false);
    /** The turn's conversation, holding its stored user message. */
    const std::string& conversation_id() const noexcept { return conversation_id_; }
    /** The seq of the turn's stored user message. */
    std::int64_t user_seq() const noexcept { return user_seq_; }
    /** Whether the turn created the conversation. */
    bool created() const noexcept { return created_; }
private:
    std::string conversation_id_;
    std::int64_t user_seq_;
    bool created_;
};

} // namespace convstate
