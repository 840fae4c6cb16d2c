#include "convstate/error.hpp"

#include <utility>

#include "convstate/version.hpp"

namespace convstate {

Error::Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}

NotFound::NotFound(const std::string& message) : Error(ErrorKind::not_found, message) {}

InvalidArgument::InvalidArgument(std::string field, const std::string& reason)
    : Error(ErrorKind::invalid_argument, "invalid " + field + ": " + reason), field_(std::move(field)) {}

Conflict::Conflict(const std::string& message) : Error(ErrorKind::conflict, message) {}

StorageError::StorageError(const std::string& message, int backend_code, std::string sqlstate)
    : StorageError(ErrorKind::storage, message, backend_code, std::move(sqlstate)) {}

StorageError::StorageError(ErrorKind kind, const std::string& message, int backend_code,
                           std::string sqlstate)
    : Error(kind, message), backend_code_(backend_code), sqlstate_(std::move(sqlstate)) {}

OutcomeUnknown::OutcomeUnknown(const std::string& message)
    : StorageError(ErrorKind::outcome_unknown, message, 0, "08000") {}

AgentError::AgentError(const std::string& message, std::string conversation_id, std::int64_t user_seq, bool created)
    : Error(ErrorKind::agent, message), conversation_id_(std::move(conversation_id)), user_seq_(user_seq),
      created_(created) {}

int version_number() noexcept { return CONVSTATE_VERSION_NUMBER; }

} // namespace convstate
