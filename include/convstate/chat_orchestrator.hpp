#pragma once
/** @file chat_orchestrator.hpp The stateless turn. */

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "convstate/database.hpp"
#include "convstate/export.hpp"
#include "convstate/history_window.hpp"
#include "convstate/types.hpp"

namespace convstate {

/** What the agent gets: the window (ending with the user message of this turn). The members
 *  refer to the turn's own data and are valid only during the agent call. */
struct AgentInput {
    const std::string& user_id;         ///< the user the turn runs for (TurnRequest::user_id)
    const std::string& conversation_id; ///< the turn's conversation (given, or created by this turn)
    const std::vector<Message>& history; ///< the window, in seq order, ending with this turn's user message
};

/** What the agent returns. `intermediate` holds the messages of an agent loop that come before
 *  the final reply (assistant messages carrying tool_calls, tool messages with their
 *  tool_call_id); they are stored, in order, in the same transaction as the reply. */
struct AgentReply {
    std::string content;              ///< content of the final reply, stored as an assistant message
    std::vector<ToolCall> tool_calls; ///< tool calls of the final reply (OpenAI format)
    /** Agent-loop messages stored before the reply, in order: assistant or tool messages only (any
     *  other role fails the turn with AgentError); their idempotency keys are ignored. */
    std::vector<Message> intermediate;
    std::string metadata_json = "{}"; ///< stored on the reply message
    /** Tokens the model reported, recorded in the usage ledger with the reply, in its
     *  transaction (ConversationStore::usage). */
    std::optional<Usage> usage;
};

/** The host's agent. May throw: the turn then fails with AgentError carrying what() and stores
 *  nothing but the user message (so does a reply that fails validation, e.g. too many messages or
 *  an invalid one). Called without any database connection or lock held. */
using Agent = std::function<AgentReply(const AgentInput&)>;

/** One turn's input. */
struct TurnRequest {
    std::string user_id;                        ///< the owning user; every lookup is scoped to it
    std::optional<std::string> conversation_id; ///< empty: create a conversation (or use conversation_key)
    /** The host's own id for the conversation (NewConversation::external_key), in place of
     *  conversation_id: the turn continues the user's conversation with this key, or creates it
     *  (with new_conversation's title and metadata). Concurrent first turns with one new key all
     *  land in one conversation. Not together with conversation_id. */
    std::optional<std::string> conversation_key;
    std::string message;                        ///< the user's content
    /** The user's content as an OpenAI content-part array (Message::content_parts_json), in
     *  place of `message` (which must then be empty): text, images, audio, files. */
    std::optional<std::string> message_parts_json;
    /** Retrying with the same key never stores the exchange twice: a completed turn returns the
     *  stored result without calling the agent; a turn whose agent failed runs it again. */
    std::optional<std::string> idempotency_key;
    NewConversation new_conversation;           ///< title/metadata when one is created
    std::string message_metadata_json = "{}";   ///< stored on the user message
    std::optional<HistoryWindow> window;        ///< overrides the orchestrator's default
    /** Run the turn without a new user message: the agent answers the conversation's last
     *  message, which must be a user message — regenerate a reply in a fork made at its user
     *  message, or retry a turn whose agent failed. Needs conversation_id or conversation_key (an
     *  existing conversation); message must be empty and idempotency_key unset (the user
     *  message keeps its own key). */
    bool regenerate = false;
};

/** One turn's outcome. */
struct TurnResult {
    std::string conversation_id;      ///< the conversation the exchange is stored in
    std::string reply;                ///< content of the stored reply
    std::vector<ToolCall> tool_calls; ///< tool calls of the stored reply
    std::int64_t user_seq = 0;        ///< seq of the stored user message
    std::int64_t reply_seq = 0;       ///< seq of the stored reply
    bool created = false;  ///< this turn created the conversation
    bool replayed = false; ///< an idempotent retry of a completed turn: the agent was not called
    /** The agent-loop messages this turn stored before its reply (assistant tool-call messages
     *  and tool results), as stored, with their seqs — never another turn's. */
    std::vector<Message> intermediate;
};

/** A turn begun by ChatOrchestrator::begin_turn: the user message is stored and committed, and
 *  `history` is what the model gets. The host runs its model — awaiting it, streaming it — and
 *  then ends the turn with complete_turn or fail_turn, passing `token`, from any thread, process
 *  or instance, minutes later if need be. Nothing about the turn is kept in memory. */
struct PendingTurn {
    std::string conversation_id;  ///< the turn's conversation (given, or created by this turn)
    std::int64_t user_seq = 0;    ///< seq of the stored user message
    bool created = false;         ///< this turn created the conversation
    std::vector<Message> history; ///< the window, in seq order, ending with this turn's user message
    /** The turn token: an opaque string naming the user, the conversation, the user message and
     *  the idempotency key. It holds no secret and no server state; complete_turn and fail_turn
     *  check it against their user id and the stored user message. Empty when `completed`. */
    std::string token;
    /** Set when a keyed retry finds this turn completed already: its stored result
     *  (TurnResult::replayed). There is no model to run and no token; history is empty. */
    std::optional<TurnResult> completed;
};

/** How two turns on one conversation at the same time are handled. */
enum class ConcurrentTurns {
    /** Both run; both exchanges are stored, each reply after its own user message. */
    allow,
    /** A turn started while another is running on the conversation fails with Conflict (one
     *  active run per conversation). A run whose process died stops counting after run_lease. */
    reject,
};

/** Options of a ChatOrchestrator, applied to every turn it runs. */
struct OrchestratorOptions {
    HistoryWindow window = HistoryWindow::everything(); ///< default window (TurnRequest::window overrides it)
    ConcurrentTurns concurrency = ConcurrentTurns::allow; ///< policy for concurrent turns on one conversation
    /** How long a running turn counts as alive: its ConcurrentTurns::reject mark, and a keyed
     *  turn's claim on its agent run. A run whose process died is taken over after this, so it
     *  bounds how long a retry of a crashed keyed turn waits; an agent that runs longer may see
     *  a duplicate of its turn run the agent too (only one reply is stored either way). */
    std::chrono::milliseconds run_lease{std::chrono::minutes(2)};
    /** How long a keyed turn waits while an identical turn (same key) runs its agent elsewhere —
     *  another thread, process or instance. It then returns that turn's stored result
     *  (replayed); if the other run is still going after this long, it fails with Conflict
     *  (retry later with the same key). The agent never runs twice at once for one key. */
    std::chrono::milliseconds duplicate_wait{std::chrono::seconds(30)};
    /** PostgreSQL: make the commit of a turn's user message wait for its WAL flush, as the
     *  reply's does (two flushes per turn). Off (the default), that first commit does not wait:
     *  the message is committed and visible to every instance before the agent runs, and the
     *  reply's commit, which waits, flushes it too — one flush per turn. What changes: if the
     *  database server crashes (or its machine loses power) within about three
     *  wal_writer_delay (0.6 s by default) of a user message whose turn has not completed, that
     *  message may be lost; a completed turn never is, and a keyed retry stores the turn again.
     *  The same holds for begin_turn's commit until complete_turn. Turns that take the general
     *  path (ConcurrentTurns::reject, keyed retries) always flush both commits. No effect on
     *  SQLite. */
    bool flush_user_message = false;
};

/** Runs stateless turns: resolve the conversation (scoped to the user), persist the user message
 *  and commit, load the window, run the agent with no connection held, persist the agent's
 *  output in one transaction, return. Nothing is kept in memory between turns.
 *
 *  Thread-safety: a cheap handle over a shared Database; turn() may run on many threads at
 *  once (and in many processes against one database). */
class CONVSTATE_API ChatOrchestrator {
public:
    /** An orchestrator over db (a shared handle) with options for every turn. Checks nothing and
     *  touches no database; inputs are validated by each turn. */
    explicit ChatOrchestrator(Database db, OrchestratorOptions options = {})
        : db_(std::move(db)), options_(std::move(options)) {}

    /** Runs one turn (see the class description) and returns what it stored. With an idempotency
     *  key, a completed turn is returned again (TurnResult::replayed) without calling the agent.
     *  @throws InvalidArgument (bad request, or an empty agent; nothing written), NotFound (missing
     *          or foreign conversation, or a truncate removed the turn's user message before its
     *          reply was stored: nothing more is stored), Conflict (policy reject, an idempotency key used by a
     *          different message, or an identical keyed turn still running after duplicate_wait),
     *          AgentError (the agent threw or its reply was invalid; the user message stays),
     *          StorageError, OutcomeUnknown. */
    TurnResult turn(const TurnRequest& request, const Agent& agent) const;

    /** Steps 1-3 of a turn (validate, resolve or create the conversation, store the user message,
     *  load the window), committed; the host then calls complete_turn or fail_turn with the
     *  token. turn() is begin_turn, the agent, complete_turn. A keyed retry of a completed turn
     *  returns PendingTurn::completed instead; one of a turn still running elsewhere waits as
     *  turn() does (OrchestratorOptions::duplicate_wait).
     *  @throws InvalidArgument (nothing written), NotFound, Conflict, StorageError, OutcomeUnknown
     *          — as turn(). */
    PendingTurn begin_turn(const TurnRequest& request) const;

    /** Step 5 of a begun turn: stores reply (its intermediate messages, then the reply) in one
     *  transaction after the messages already there, and returns what was stored. Completing a
     *  turn again stores nothing and returns the stored result (TurnResult::replayed). Any
     *  ChatOrchestrator over the same database may complete a turn another one began.
     *  @throws InvalidArgument naming the field: a token that begin_turn did not make
     *          ("turn_token"), or an invalid reply ("reply.content", "intermediate[2].role", …);
     *          nothing is written and the turn stays pending (complete or fail it).
     *          NotFound: the token is another user's, names a user message that is not there, or
     *          its conversation was deleted. StorageError, OutcomeUnknown (retry: it stores once). */
    TurnResult complete_turn(const std::string& user_id, const std::string& token, AgentReply reply) const;

    /** Ends a begun turn without a reply: the user message stays (as when turn()'s agent throws),
     *  the turn's ConcurrentTurns::reject mark is cleared and a keyed turn's claim released, so a
     *  retry with the key runs at once. `reason` (UTF-8, at most max_content_bytes) is checked but
     *  not stored. Failing a completed turn changes nothing; completing a failed one still stores
     *  its reply.
     *  @throws InvalidArgument ("turn_token", "reason"), NotFound (as complete_turn),
     *          StorageError. */
    void fail_turn(const std::string& user_id, const std::string& token, const std::string& reason = {}) const;

    /** The window a turn would show the agent now (for inspection and tests), in seq order.
     *  @throws InvalidArgument (ids, or a window with max_messages or token_budget below 1),
     *          NotFound (missing or foreign conversation), StorageError. */
    std::vector<Message> window(const std::string& user_id, const std::string& conversation_id,
                                const HistoryWindow& window) const;

private:
    Database db_;
    OrchestratorOptions options_;
};

} // namespace convstate
