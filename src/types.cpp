// The public functions of types.hpp (Role names) and the one NotFound every scoped lookup raises.
#include "convstate/types.hpp"

#include <string>

#include "convstate/error.hpp"
#include "util.hpp"

namespace convstate {

void detail::throw_not_found(std::string_view conversation_id) {
    throw NotFound("conversation '" + std::string(conversation_id.substr(0, 255)) + "' not found");
}

std::string_view to_string(Role role) noexcept {
    switch (role) {
    case Role::system: return "system";
    case Role::user: return "user";
    case Role::assistant: return "assistant";
    case Role::tool: return "tool";
    case Role::developer: return "developer";
    }
    return "unknown";
}

Role role_from_string(std::string_view name) {
    for (Role r : {Role::system, Role::user, Role::assistant, Role::tool, Role::developer})
        if (to_string(r) == name) return r;
    throw InvalidArgument("role", "'" + detail::utf8_prefix(name) +
                                      "' is not one of system, developer, user, assistant, tool");
}

} // namespace convstate
