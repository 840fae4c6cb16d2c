// The C ABI: a thin wrapper over the C++ API. It converts arguments, calls the library, and
// turns every exception into a status code plus a thread-local message. No logic of its own.
#include "convstate/convstate.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include <convstate/convstate.hpp>

// Redefines the C header's version macros: the build fails unless the two agree.
#include <convstate/version.hpp>

struct convstate_db {
    convstate::Database db;
};

struct convstate_reply {
    convstate::AgentReply reply;
    std::string error;
};

namespace {

thread_local std::string last_error;
thread_local std::string last_field;

convstate_status status_of(convstate::ErrorKind kind) {
    switch (kind) {
    case convstate::ErrorKind::not_found: return CONVSTATE_NOT_FOUND;
    case convstate::ErrorKind::invalid_argument: return CONVSTATE_INVALID_ARGUMENT;
    case convstate::ErrorKind::conflict: return CONVSTATE_CONFLICT;
    case convstate::ErrorKind::storage: return CONVSTATE_STORAGE_ERROR;
    case convstate::ErrorKind::outcome_unknown: return CONVSTATE_OUTCOME_UNKNOWN;
    case convstate::ErrorKind::agent: return CONVSTATE_AGENT_ERROR;
    }
    return CONVSTATE_INTERNAL_ERROR;
}

convstate_status fail(convstate_status status, const char* message, const std::string& field = {}) noexcept {
    try {
        last_error = message;
        last_field = field;
    } catch (...) { // out of memory while recording the error: keep the status
    }
    return status;
}

// Runs fn; every exception becomes a status and a thread-local message.
template <class F>
convstate_status guard(F&& fn) noexcept {
    try {
        fn();
        return CONVSTATE_OK;
    } catch (const convstate::InvalidArgument& e) {
        return fail(CONVSTATE_INVALID_ARGUMENT, e.what(), e.field());
    } catch (const convstate::Error& e) {
        return fail(status_of(e.kind()), e.what());
    } catch (const std::bad_alloc&) {
        return fail(CONVSTATE_INTERNAL_ERROR, "out of memory");
    } catch (const std::exception& e) {
        return fail(CONVSTATE_INTERNAL_ERROR, e.what());
    } catch (...) {
        return fail(CONVSTATE_INTERNAL_ERROR, "unknown error");
    }
}

template <class T>
T* require(T* p, const char* name) {
    if (!p) throw convstate::InvalidArgument(name, "must not be NULL");
    return p;
}

const char* text(const char* p, const char* name) { return require(p, name); }

convstate::Database& database(convstate_db* db) { return require(db, "db")->db; }

char* copy_out(const std::string& s) {
    char* p = static_cast<char*>(std::malloc(s.size() + 1));
    if (!p) throw std::bad_alloc();
    std::memcpy(p, s.data(), s.size() + 1);
    return p;
}

// Stores s in *out when out is given (optional outputs) — for required outputs, require() first.
void put(char** out, const std::string& s) {
    if (out) *out = copy_out(s);
}

void check_version(unsigned int version, unsigned int current, const char* name) {
    if (version < 1 || version > current)
        throw convstate::InvalidArgument(std::string(name) + ".version",
                                         "is " + std::to_string(version) + "; this library knows 1.." +
                                             std::to_string(current) + " (use the _INIT macro)");
}

// convstate_role mirrors convstate::Role value for value.
static_assert(static_cast<int>(convstate::Role::system) == CONVSTATE_ROLE_SYSTEM &&
              static_cast<int>(convstate::Role::user) == CONVSTATE_ROLE_USER &&
              static_cast<int>(convstate::Role::assistant) == CONVSTATE_ROLE_ASSISTANT &&
              static_cast<int>(convstate::Role::tool) == CONVSTATE_ROLE_TOOL &&
              static_cast<int>(convstate::Role::developer) == CONVSTATE_ROLE_DEVELOPER);

convstate::HistoryWindow to_window(const convstate_window* w) {
    if (!w) return convstate::HistoryWindow::everything();
    check_version(w->version, CONVSTATE_WINDOW_VERSION, "window");
    convstate::HistoryWindow out;
    switch (w->kind) { // an int, so any value the caller wrote is safe to inspect
    case CONVSTATE_WINDOW_ALL: break;
    case CONVSTATE_WINDOW_LAST_MESSAGES: out = convstate::HistoryWindow::last(w->max_messages); break;
    case CONVSTATE_WINDOW_TOKEN_BUDGET: out = convstate::HistoryWindow::tokens(w->token_budget); break;
    default: throw convstate::InvalidArgument("window.kind", "is not a convstate_window_kind");
    }
    out.keep_system = w->keep_system != 0;
    if (w->version >= 2) { // fields a version-1 caller's struct does not have
        out.from_summary = w->from_summary != 0;
        if (w->summary_role < CONVSTATE_ROLE_SYSTEM || w->summary_role > CONVSTATE_ROLE_DEVELOPER)
            throw convstate::InvalidArgument("window.summary_role", "is not a convstate_role");
        out.summary_role = static_cast<convstate::Role>(w->summary_role);
    }
    return out;
}

std::optional<std::int64_t> optional_seq(const int64_t* p) {
    return p ? std::optional<std::int64_t>(*p) : std::nullopt;
}

// A turn's request and orchestrator options from convstate_turn's arguments.
void to_turn(const char* user_id, const char* message, const convstate_turn_options* options,
             convstate::TurnRequest& request, convstate::OrchestratorOptions& orchestrator) {
    request.user_id = text(user_id, "user_id");
    request.message = text(message, "message");
    if (options) {
        check_version(options->version, CONVSTATE_TURN_OPTIONS_VERSION, "options");
        if (options->conversation_id) request.conversation_id = options->conversation_id;
        if (options->idempotency_key) request.idempotency_key = options->idempotency_key;
        if (options->title) request.new_conversation.title = options->title;
        if (options->conversation_metadata_json) request.new_conversation.metadata_json = options->conversation_metadata_json;
        if (options->message_metadata_json) request.message_metadata_json = options->message_metadata_json;
        if (options->window) request.window = to_window(options->window);
        if (options->reject_concurrent) orchestrator.concurrency = convstate::ConcurrentTurns::reject;
        if (options->version >= 2) { // fields a version-1 caller's struct does not have
            auto duration = [](long long ms, const char* field, std::chrono::milliseconds fallback) {
                if (ms < 0 || ms > 86'400'000LL)
                    throw convstate::InvalidArgument(std::string("options.") + field, "must be 0..86400000 (ms)");
                return ms == 0 ? fallback : std::chrono::milliseconds(ms);
            };
            orchestrator.run_lease = duration(options->run_lease_ms, "run_lease_ms", orchestrator.run_lease);
            orchestrator.duplicate_wait =
                duration(options->duplicate_wait_ms, "duplicate_wait_ms", orchestrator.duplicate_wait);
        }
        if (options->version >= 3) orchestrator.flush_user_message = options->flush_user_message != 0;
        if (options->version >= 4 && options->conversation_key) request.conversation_key = options->conversation_key;
        if (options->version >= 5) request.regenerate = options->regenerate != 0;
        if (options->version >= 6 && options->message_parts_json) request.message_parts_json = options->message_parts_json;
    }
}

} // namespace

extern "C" {

int convstate_version_number(void) { return convstate::version_number(); }

const char* convstate_version_string(void) {
    // From the C++ library actually loaded, like convstate_version_number().
    static const std::string version = [] {
        const int n = convstate::version_number();
        return std::to_string(n / 10000) + "." + std::to_string(n / 100 % 100) + "." + std::to_string(n % 100);
    }();
    return version.c_str();
}

const char* convstate_status_name(int status) {
    switch (status) {
    case CONVSTATE_OK: return "CONVSTATE_OK";
    case CONVSTATE_NOT_FOUND: return "CONVSTATE_NOT_FOUND";
    case CONVSTATE_INVALID_ARGUMENT: return "CONVSTATE_INVALID_ARGUMENT";
    case CONVSTATE_CONFLICT: return "CONVSTATE_CONFLICT";
    case CONVSTATE_STORAGE_ERROR: return "CONVSTATE_STORAGE_ERROR";
    case CONVSTATE_OUTCOME_UNKNOWN: return "CONVSTATE_OUTCOME_UNKNOWN";
    case CONVSTATE_AGENT_ERROR: return "CONVSTATE_AGENT_ERROR";
    case CONVSTATE_INTERNAL_ERROR: return "CONVSTATE_INTERNAL_ERROR";
    }
    return "CONVSTATE_UNKNOWN_STATUS";
}

const char* convstate_last_error(void) { return last_error.c_str(); }
const char* convstate_last_error_field(void) { return last_field.c_str(); }
void convstate_free(void* p) { std::free(p); }

convstate_status convstate_db_open(const char* url, const convstate_db_options* options, convstate_db** out) {
    if (out) *out = nullptr;
    return guard([&] {
        require(out, "out");
        convstate::DatabaseOptions o;
        if (options) {
            check_version(options->version, CONVSTATE_DB_OPTIONS_VERSION, "options");
            o.pool_size = options->pool_size;
            o.busy_timeout = std::chrono::milliseconds(options->busy_timeout_ms);
            o.connect_timeout = std::chrono::milliseconds(options->connect_timeout_ms);
            o.migrate_on_open = options->migrate_on_open != 0;
            o.max_retries = options->max_retries;
            if (options->max_content_bytes) o.limits.max_content_bytes = options->max_content_bytes;
            if (options->version >= 2) { // fields a version-1 caller's struct does not have
                o.prepared_statements = options->prepared_statements != 0;
                o.pool_timeout = std::chrono::milliseconds(options->pool_timeout_ms);
                o.statement_timeout = std::chrono::milliseconds(options->statement_timeout_ms);
                const std::pair<std::uint64_t, std::size_t*> limits[] = {
                    {options->max_user_id_bytes, &o.limits.max_user_id_bytes},
                    {options->max_id_bytes, &o.limits.max_id_bytes},
                    {options->max_title_bytes, &o.limits.max_title_bytes},
                    {options->max_metadata_bytes, &o.limits.max_metadata_bytes},
                    {options->max_tool_calls, &o.limits.max_tool_calls},
                    {options->max_batch, &o.limits.max_batch}};
                for (const auto& [given, limit] : limits)
                    if (given) *limit = static_cast<std::size_t>(given);
            }
            if (options->version >= 3 && options->log) {
                if (options->log_level < CONVSTATE_LOG_DEBUG || options->log_level > CONVSTATE_LOG_ERROR)
                    throw convstate::InvalidArgument("log_level", "must be one of CONVSTATE_LOG_DEBUG..CONVSTATE_LOG_ERROR");
                o.log_level = static_cast<convstate::LogLevel>(options->log_level);
                o.log = [fn = options->log, context = options->log_context](convstate::LogLevel level,
                                                                           std::string_view message) {
                    const std::string text(message); // NUL-terminated for C
                    fn(context, static_cast<int>(level), text.c_str());
                };
            }
        }
        *out = new convstate_db{convstate::Database::open(text(url, "url"), o)};
    });
}

void convstate_db_close(convstate_db* db) { delete db; }

convstate_status convstate_db_migrate(convstate_db* db) {
    return guard([&] { database(db).migrate(); });
}

convstate_status convstate_db_schema_version(convstate_db* db, int* out) {
    return guard([&] { *require(out, "out") = database(db).schema_version(); });
}

convstate_status convstate_db_stats(convstate_db* db, convstate_stats* out) {
    return guard([&] {
        const convstate::DatabaseStats s = database(db).stats();
        *require(out, "out") = convstate_stats{s.statements, s.transactions, s.retries};
    });
}

convstate_status convstate_db_stats_json(convstate_db* db, char** out_json) {
    return guard([&] {
        require(out_json, "out_json");
        put(out_json, convstate::json::to_json(database(db).stats()));
    });
}

convstate_status convstate_conversation_create(convstate_db* db, const char* user_id, const char* title,
                                               const char* metadata_json, char** out_json) {
    return guard([&] {
        require(out_json, "out_json");
        convstate::NewConversation spec;
        if (title) spec.title = title;
        if (metadata_json) spec.metadata_json = metadata_json;
        put(out_json, convstate::json::to_json(convstate::ConversationStore(database(db)).create(text(user_id, "user_id"), spec)));
    });
}

convstate_status convstate_conversation_get_or_create(convstate_db* db, const char* user_id,
                                                      const char* external_key, const char* title,
                                                      const char* metadata_json, char** out_json) {
    return guard([&] {
        require(out_json, "out_json");
        convstate::NewConversation spec;
        spec.external_key = text(external_key, "external_key");
        if (title) spec.title = title;
        if (metadata_json) spec.metadata_json = metadata_json;
        put(out_json, convstate::json::to_json(
                          convstate::ConversationStore(database(db)).get_or_create(text(user_id, "user_id"), spec)));
    });
}

convstate_status convstate_conversation_fork(convstate_db* db, const char* user_id, const char* conversation_id,
                                             int64_t at_seq, const char* title, const char* metadata_json,
                                             const char* external_key, char** out_json) {
    return guard([&] {
        require(out_json, "out_json");
        convstate::ForkOptions options;
        if (title) options.title = title;
        if (metadata_json) options.metadata_json = metadata_json;
        if (external_key) options.external_key = external_key;
        put(out_json, convstate::json::to_json(convstate::ConversationStore(database(db)).fork(
                          text(user_id, "user_id"), text(conversation_id, "conversation_id"), at_seq, options)));
    });
}

convstate_status convstate_conversation_forks(convstate_db* db, const char* user_id, const char* conversation_id,
                                              char** out_json) {
    return guard([&] {
        require(out_json, "out_json");
        put(out_json, convstate::json::to_json(convstate::ConversationStore(database(db)).forks(
                          text(user_id, "user_id"), text(conversation_id, "conversation_id"))));
    });
}

convstate_status convstate_conversation_get_by_key(convstate_db* db, const char* user_id, const char* external_key,
                                                   char** out_json) {
    return guard([&] {
        require(out_json, "out_json");
        put(out_json, convstate::json::to_json(convstate::ConversationStore(database(db)).get_by_key(
                          text(user_id, "user_id"), text(external_key, "external_key"))));
    });
}

convstate_status convstate_conversation_get(convstate_db* db, const char* user_id, const char* conversation_id,
                                            char** out_json) {
    return guard([&] {
        require(out_json, "out_json");
        put(out_json, convstate::json::to_json(convstate::ConversationStore(database(db)).get(
                          text(user_id, "user_id"), text(conversation_id, "conversation_id"))));
    });
}

convstate_status convstate_conversation_list(convstate_db* db, const char* user_id, const char* cursor, int limit,
                                             char** out_json) {
    return guard([&] {
        require(out_json, "out_json");
        convstate::ListOptions o;
        if (cursor) o.cursor = cursor;
        o.limit = limit;
        put(out_json, convstate::json::to_json(convstate::ConversationStore(database(db)).list(text(user_id, "user_id"), o)));
    });
}

convstate_status convstate_conversation_rename(convstate_db* db, const char* user_id, const char* conversation_id,
                                               const char* title, char** out_json) {
    return guard([&] {
        put(out_json, convstate::json::to_json(convstate::ConversationStore(database(db)).rename(
                          text(user_id, "user_id"), text(conversation_id, "conversation_id"), text(title, "title"))));
    });
}

convstate_status convstate_conversation_set_metadata(convstate_db* db, const char* user_id, const char* conversation_id,
                                                     const char* metadata_json, char** out_json) {
    return guard([&] {
        put(out_json, convstate::json::to_json(convstate::ConversationStore(database(db)).set_metadata(
                          text(user_id, "user_id"), text(conversation_id, "conversation_id"),
                          text(metadata_json, "metadata_json"))));
    });
}

convstate_status convstate_conversation_delete(convstate_db* db, const char* user_id, const char* conversation_id) {
    return guard([&] {
        convstate::ConversationStore(database(db)).remove(text(user_id, "user_id"), text(conversation_id, "conversation_id"));
    });
}

convstate_status convstate_conversation_delete_all(convstate_db* db, const char* user_id, uint64_t* out_count) {
    return guard([&] {
        const std::size_t n = convstate::ConversationStore(database(db)).remove_all(text(user_id, "user_id"));
        if (out_count) *out_count = n;
    });
}

convstate_status convstate_conversations_purge(convstate_db* db, int64_t older_than_us, const char* user_id,
                                               uint64_t batch_size, int dry_run, uint64_t* out_conversations,
                                               uint64_t* out_messages) {
    return guard([&] {
        convstate::PurgeOptions options;
        if (user_id) options.user_id = std::string(user_id);
        if (batch_size != 0) options.batch_size = batch_size > 10000 ? 10001 : static_cast<std::size_t>(batch_size);
        options.dry_run = dry_run != 0;
        const convstate::PurgeResult r = convstate::ConversationStore(database(db)).purge(older_than_us, options);
        if (out_conversations) *out_conversations = static_cast<uint64_t>(r.conversations);
        if (out_messages) *out_messages = static_cast<uint64_t>(r.messages);
    });
}

convstate_status convstate_message_append(convstate_db* db, const char* user_id, const char* conversation_id,
                                          const char* message_json, const int64_t* expected_last_seq, char** out_json) {
    return guard([&] {
        const convstate::Message m = convstate::json::message_from_json(text(message_json, "message_json"));
        put(out_json, convstate::json::to_json(convstate::MessageRepository(database(db)).append(
                          text(user_id, "user_id"), text(conversation_id, "conversation_id"), m,
                          {.expected_last_seq = optional_seq(expected_last_seq)})));
    });
}

convstate_status convstate_message_append_batch(convstate_db* db, const char* user_id, const char* conversation_id,
                                                const char* messages_json, const int64_t* expected_last_seq,
                                                char** out_json) {
    return guard([&] {
        const auto batch = convstate::json::messages_from_json(text(messages_json, "messages_json"));
        put(out_json, convstate::json::to_json(convstate::MessageRepository(database(db)).append_batch(
                          text(user_id, "user_id"), text(conversation_id, "conversation_id"), batch,
                          {.expected_last_seq = optional_seq(expected_last_seq)})));
    });
}

convstate_status convstate_message_load_all(convstate_db* db, const char* user_id, const char* conversation_id,
                                            char** out_json) {
    return guard([&] {
        require(out_json, "out_json");
        put(out_json, convstate::json::to_json(convstate::MessageRepository(database(db)).load_all(
                          text(user_id, "user_id"), text(conversation_id, "conversation_id"))));
    });
}

convstate_status convstate_message_load_last(convstate_db* db, const char* user_id, const char* conversation_id,
                                             uint64_t n, char** out_json) {
    return guard([&] {
        require(out_json, "out_json");
        put(out_json, convstate::json::to_json(convstate::MessageRepository(database(db)).load_last(
                          text(user_id, "user_id"), text(conversation_id, "conversation_id"), n)));
    });
}

convstate_status convstate_message_load_after(convstate_db* db, const char* user_id, const char* conversation_id,
                                              int64_t after_seq, uint64_t limit, char** out_json) {
    return guard([&] {
        require(out_json, "out_json");
        put(out_json, convstate::json::to_json(convstate::MessageRepository(database(db)).load_after(
                          text(user_id, "user_id"), text(conversation_id, "conversation_id"), after_seq, limit)));
    });
}

convstate_status convstate_message_load_before(convstate_db* db, const char* user_id, const char* conversation_id,
                                               int64_t before_seq, uint64_t limit, char** out_json) {
    return guard([&] {
        require(out_json, "out_json");
        put(out_json, convstate::json::to_json(convstate::MessageRepository(database(db)).load_before(
                          text(user_id, "user_id"), text(conversation_id, "conversation_id"), before_seq, limit)));
    });
}

convstate_status convstate_message_count(convstate_db* db, const char* user_id, const char* conversation_id,
                                         int64_t* out) {
    return guard([&] {
        require(out, "out");
        *out = convstate::MessageRepository(database(db)).count(text(user_id, "user_id"),
                                                                text(conversation_id, "conversation_id"));
    });
}

convstate_status convstate_message_truncate(convstate_db* db, const char* user_id, const char* conversation_id,
                                            int64_t after_seq, const int64_t* expected_last_seq, int64_t* out_removed) {
    return guard([&] {
        const std::int64_t removed = convstate::MessageRepository(database(db)).truncate(
            text(user_id, "user_id"), text(conversation_id, "conversation_id"), after_seq,
            optional_seq(expected_last_seq));
        if (out_removed) *out_removed = removed;
    });
}

convstate_status convstate_usage(convstate_db* db, const char* user_id, const char* conversation_id, char** out_json) {
    return guard([&] {
        require(out_json, "out_json");
        put(out_json, convstate::json::to_json(convstate::ConversationStore(database(db)).usage(
                          text(user_id, "user_id"), text(conversation_id, "conversation_id"))));
    });
}

convstate_status convstate_usage_since(convstate_db* db, const char* user_id, int64_t since_us, char** out_json) {
    return guard([&] {
        require(out_json, "out_json");
        put(out_json, convstate::json::to_json(
                          convstate::ConversationStore(database(db)).usage_since(text(user_id, "user_id"), since_us)));
    });
}

convstate_status convstate_summary_add(convstate_db* db, const char* user_id, const char* conversation_id,
                                       int64_t covers_through_seq, const char* content, const char* metadata_json,
                                       char** out_json) {
    return guard([&] {
        const convstate::Summary s = convstate::MessageRepository(database(db)).add_summary(
            text(user_id, "user_id"), text(conversation_id, "conversation_id"), covers_through_seq,
            text(content, "content"), metadata_json ? metadata_json : "{}");
        put(out_json, convstate::json::to_json(s));
    });
}

convstate_status convstate_summary_list(convstate_db* db, const char* user_id, const char* conversation_id,
                                        char** out_json) {
    return guard([&] {
        require(out_json, "out_json");
        put(out_json, convstate::json::to_json(convstate::MessageRepository(database(db)).summaries(
                          text(user_id, "user_id"), text(conversation_id, "conversation_id"))));
    });
}

convstate_status convstate_window_load(convstate_db* db, const char* user_id, const char* conversation_id,
                                       const convstate_window* window, char** out_json) {
    return guard([&] {
        require(out_json, "out_json");
        put(out_json, convstate::json::to_json(convstate::ChatOrchestrator(database(db)).window(
                          text(user_id, "user_id"), text(conversation_id, "conversation_id"), to_window(window))));
    });
}

convstate_status convstate_reply_set_content(convstate_reply* reply, const char* content) {
    return guard([&] { require(reply, "reply")->reply.content = text(content, "content"); });
}

convstate_status convstate_reply_set_tool_calls(convstate_reply* reply, const char* tool_calls_json) {
    return guard([&] {
        require(reply, "reply")->reply.tool_calls = convstate::json::tool_calls_from_json(text(tool_calls_json, "tool_calls_json"));
    });
}

convstate_status convstate_reply_add_message(convstate_reply* reply, const char* message_json) {
    return guard([&] {
        require(reply, "reply")->reply.intermediate.push_back(
            convstate::json::message_from_json(text(message_json, "message_json")));
    });
}

convstate_status convstate_reply_set_metadata(convstate_reply* reply, const char* metadata_json) {
    return guard([&] { require(reply, "reply")->reply.metadata_json = text(metadata_json, "metadata_json"); });
}

convstate_status convstate_reply_set_usage(convstate_reply* reply, const char* usage_json) {
    return guard([&] {
        convstate_reply* r = require(reply, "reply");
        r->reply.usage = convstate::json::usage_from_json(text(usage_json, "usage_json"));
    });
}

convstate_status convstate_reply_set_error(convstate_reply* reply, const char* message) {
    return guard([&] { require(reply, "reply")->error = text(message, "message"); });
}

convstate_status convstate_turn(convstate_db* db, const char* user_id, const char* message,
                                const convstate_turn_options* options, convstate_agent_fn agent, void* context,
                                char** out_json) {
    return guard([&] {
        require(out_json, "out_json");
        if (!agent) throw convstate::InvalidArgument("agent", "must not be NULL");
        convstate::TurnRequest request;
        convstate::OrchestratorOptions orchestrator;
        to_turn(user_id, message, options, request, orchestrator);
        const convstate::ChatOrchestrator chat(database(db), orchestrator);
        convstate::TurnResult result;
        try {
            result = chat.turn(request, [&](const convstate::AgentInput& in) {
            const std::string history = convstate::json::to_json(in.history);
            convstate_reply reply;
            const int status = agent(context, history.c_str(), in.user_id.c_str(), in.conversation_id.c_str(), &reply);
            if (status != CONVSTATE_OK)
                throw std::runtime_error(reply.error.empty()
                                             ? std::string("the agent returned ") + convstate_status_name(status)
                                             : reply.error);
            return std::move(reply.reply);
            });
        } catch (const convstate::AgentError& e) {
            // Where the user message was stored, so the host can continue the conversation.
            convstate::TurnResult partial;
            partial.conversation_id = e.conversation_id();
            partial.user_seq = e.user_seq();
            partial.created = e.created();
            put(out_json, convstate::json::to_json(partial));
            throw;
        }
        put(out_json, convstate::json::to_json(result));
    });
}

convstate_status convstate_turn_begin(convstate_db* db, const char* user_id, const char* message,
                                      const convstate_turn_options* options, char** out_json) {
    return guard([&] {
        require(out_json, "out_json");
        convstate::TurnRequest request;
        convstate::OrchestratorOptions orchestrator;
        to_turn(user_id, message, options, request, orchestrator);
        put(out_json, convstate::json::to_json(convstate::ChatOrchestrator(database(db), orchestrator).begin_turn(request)));
    });
}

convstate_status convstate_turn_complete(convstate_db* db, const char* user_id, const char* token,
                                         const char* reply_json, char** out_json) {
    return guard([&] {
        require(out_json, "out_json");
        const convstate::ChatOrchestrator chat(database(db));
        put(out_json, convstate::json::to_json(chat.complete_turn(
                          text(user_id, "user_id"), text(token, "token"),
                          convstate::json::reply_from_json(text(reply_json, "reply_json")))));
    });
}

convstate_status convstate_turn_fail(convstate_db* db, const char* user_id, const char* token, const char* reason) {
    return guard([&] {
        convstate::ChatOrchestrator(database(db)).fail_turn(text(user_id, "user_id"), text(token, "token"),
                                                            reason ? reason : "");
    });
}

} // extern "C"
