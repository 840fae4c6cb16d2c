// The C header compiled as C++ (-std=c++20 -Wall -Wextra -Wpedantic -Werror): it must parse,
// give the declarations C linkage, and its _INIT macros must be valid C++ initialisers.
#include <convstate/convstate.h>

#include <type_traits>

namespace {

static_assert(CONVSTATE_OK == 0, "CONVSTATE_OK is 0");
static_assert(CONVSTATE_VERSION_NUMBER ==
                  CONVSTATE_VERSION_MAJOR * 10000 + CONVSTATE_VERSION_MINOR * 100 + CONVSTATE_VERSION_PATCH,
              "version macros agree");
static_assert(std::is_standard_layout_v<convstate_turn_options> && std::is_trivial_v<convstate_turn_options>,
              "option structs are plain C structs");

int agent(void* context, const char* history_json, const char* user_id, const char* conversation_id,
          convstate_reply* reply) {
    (void)context;
    (void)history_json;
    (void)user_id;
    (void)conversation_id;
    return convstate_reply_set_content(reply, "hi");
}

} // namespace

using turn_fn = convstate_status (*)(convstate_db*, const char*, const char*, const convstate_turn_options*,
                                     convstate_agent_fn, void*, char**);
static_assert(std::is_same_v<decltype(&convstate_turn), turn_fn>, "convstate_turn's signature");

int main() {
    // Referencing the functions makes the link prove their C linkage (a C++-mangled declaration
    // would not resolve against libconvstate_c).
    turn_fn volatile turn = &convstate_turn;
    convstate_agent_fn volatile fn = &agent;
    const convstate_db_options db_options = CONVSTATE_DB_OPTIONS_INIT;
    const convstate_window window = CONVSTATE_WINDOW_INIT;
    convstate_turn_options options = CONVSTATE_TURN_OPTIONS_INIT;
    options.window = &window;
    convstate_free(nullptr);
    const bool ok = turn == &convstate_turn && fn == &agent && db_options.version == CONVSTATE_DB_OPTIONS_VERSION &&
                    options.version == CONVSTATE_TURN_OPTIONS_VERSION && options.conversation_id == nullptr &&
                    options.window->kind == CONVSTATE_WINDOW_ALL &&
                    convstate_version_number() == CONVSTATE_VERSION_NUMBER &&
                    convstate_reply_set_content(nullptr, "x") == CONVSTATE_INVALID_ARGUMENT;
    return ok ? 0 : 1;
}
