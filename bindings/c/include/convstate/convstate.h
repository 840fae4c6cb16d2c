/**
 * @file convstate.h
 * The convstate C API: stateless conversation handling for chat and agent servers.
 *
 * A thin wrapper over the C++ library (convstate.hpp) for C hosts and for FFI from Python,
 * Rust and others. Conventions:
 *
 *  - Every function returns a convstate_status; CONVSTATE_OK is 0. Out-parameters come last.
 *  - On failure convstate_last_error() describes what went wrong (thread-local, never NULL) and
 *    convstate_last_error_field() names the offending field for CONVSTATE_INVALID_ARGUMENT.
 *  - Messages, conversations and results cross the boundary as UTF-8 JSON in the OpenAI chat
 *    format (see include/convstate/json.hpp for the fields).
 *  - Every `char**` result is owned by the caller and freed with convstate_free(). Every
 *    `const char*` the library returns is borrowed (see each function for how long).
 *  - NULL handles or required arguments give CONVSTATE_INVALID_ARGUMENT, never a crash; no C++
 *    exception ever crosses this boundary.
 *  - Option structs start with a `version` field; initialise them with their _INIT macro.
 *
 * Thread-safety: a convstate_db may be used from any number of threads at once (it holds a
 * connection pool). A convstate_reply is valid only inside the agent callback that received it,
 * on that thread. convstate_last_error() is per thread.
 *
 * This header compiles as C99 and as C++.
 */
#ifndef CONVSTATE_H
#define CONVSTATE_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#  if defined(CONVSTATE_C_BUILDING)
#    define CONVSTATE_C_API __declspec(dllexport)
#  else
#    define CONVSTATE_C_API __declspec(dllimport)
#  endif
#else
#  define CONVSTATE_C_API __attribute__((visibility("default")))
#endif
/** @def CONVSTATE_C_API
 *  Marks a function exported by the convstate C library (libconvstate_c): dllexport/dllimport
 *  on Windows (CONVSTATE_C_BUILDING while building it), default visibility elsewhere. */

#ifdef __cplusplus
extern "C" {
#endif

/** @name Version
 *  CONVSTATE_VERSION_MAJOR, _MINOR, _PATCH and _NUMBER come from convstate/version.h, the one
 *  file that defines them for C and C++ alike (convstate/version.hpp includes it too). */
/** @{ */
#include <convstate/version.h> /* CONVSTATE_VERSION_MAJOR, _MINOR, _PATCH, _NUMBER */

/** The version of the library actually loaded; compare with CONVSTATE_VERSION_NUMBER to catch a
 *  header/library mismatch. */
CONVSTATE_C_API int convstate_version_number(void);
/** "MAJOR.MINOR.PATCH" of the library actually loaded; static storage, never freed. */
CONVSTATE_C_API const char *convstate_version_string(void);
/** @} */

/** @name Statuses, errors and memory */
/** @{ */

/** Status codes, one per C++ error kind. */
typedef enum convstate_status {
    CONVSTATE_OK = 0,               /**< success */
    CONVSTATE_NOT_FOUND = 1,        /**< missing, or another user's (indistinguishable) */
    CONVSTATE_INVALID_ARGUMENT = 2, /**< bad input (see convstate_last_error_field); nothing written */
    CONVSTATE_CONFLICT = 3,         /**< expected_last_seq mismatch, a concurrent turn rejected, a key taken */
    CONVSTATE_STORAGE_ERROR = 4,    /**< the database failed after bounded retries */
    CONVSTATE_OUTCOME_UNKNOWN = 5,  /**< connection lost during COMMIT of an unkeyed write */
    CONVSTATE_AGENT_ERROR = 6,      /**< the agent callback failed; only the user message is stored */
    CONVSTATE_INTERNAL_ERROR = 7    /**< anything else (e.g. out of memory) */
} convstate_status;

/** A stable name for a status ("CONVSTATE_NOT_FOUND"…, "CONVSTATE_UNKNOWN_STATUS" for other
 *  values); static storage. Takes an int so that any value is safe to pass. */
CONVSTATE_C_API const char *convstate_status_name(int status);

/** The message of the last failed call on this thread ("" if none). Never NULL. Borrowed: valid
 *  until the next convstate call on this thread. */
CONVSTATE_C_API const char *convstate_last_error(void);
/** For CONVSTATE_INVALID_ARGUMENT, the field named by the last error ("user_id",
 *  "messages[2].content"…); "" otherwise. Never NULL; borrowed like convstate_last_error(). */
CONVSTATE_C_API const char *convstate_last_error_field(void);

/** Frees a string returned through a `char**` out-parameter. convstate_free(NULL) does nothing. */
CONVSTATE_C_API void convstate_free(void *p);
/** @} */

/** @name Database */
/** @{ */

/** An open database: a connection pool. Opaque; from convstate_db_open, released with
 *  convstate_db_close. */
typedef struct convstate_db convstate_db;

/** The convstate_db_options::version this header knows. Version 1 ends at max_content_bytes. */
#define CONVSTATE_DB_OPTIONS_VERSION 3

/** Levels of a log message (convstate_db_options.log_level, convstate_log_fn). */
typedef enum convstate_log_level {
    CONVSTATE_LOG_DEBUG = 0,   /**< details for diagnosis */
    CONVSTATE_LOG_INFO = 1,    /**< opening a database, migrations */
    CONVSTATE_LOG_WARNING = 2, /**< reconnects, retries, pool timeouts */
    CONVSTATE_LOG_ERROR = 3    /**< storage errors, writes of unknown outcome */
} convstate_log_level;
/** Receives one log message: a convstate_log_level and UTF-8 text, valid during the call only.
 *  Called from whichever thread logs, possibly several at once; it should return quickly.
 *  Messages never hold a password; message content appears only at CONVSTATE_LOG_DEBUG, in
 *  error details the database returned. */
typedef void (*convstate_log_fn)(void *context, int level, const char *message);
/** Options of convstate_db_open; initialise with CONVSTATE_DB_OPTIONS_INIT. Every field is used
 *  as given and checked as by the C++ Database::open (pool_size 1..1024, max_retries >= 0,
 *  statement_timeout_ms 1 ms..24 h; pool_timeout_ms 0 fails at once when no connection is free),
 *  except that a limit of 0 means its default. */
typedef struct convstate_db_options {
    unsigned int version;            /**< CONVSTATE_DB_OPTIONS_VERSION */
    unsigned int pool_size;          /**< connections kept open (>= 1) */
    unsigned int busy_timeout_ms;    /**< SQLite: wait for another writer */
    unsigned int connect_timeout_ms; /**< PostgreSQL: connect timeout */
    int migrate_on_open;             /**< nonzero: apply pending migrations in open */
    int max_retries;                 /**< transient-error retries per operation */
    uint64_t max_content_bytes;      /**< largest message content accepted; 0: the default (8 MiB) */
    /* version 2 */
    int prepared_statements;           /**< PostgreSQL: nonzero keeps statements prepared per
                                            connection; 0 behind a transaction-pooling proxy
                                            such as pgbouncer */
    unsigned int pool_timeout_ms;      /**< wait for a free pooled connection */
    unsigned int statement_timeout_ms; /**< PostgreSQL: the longest a statement may run */
    uint64_t max_user_id_bytes;        /**< 0: the default (255) */
    uint64_t max_id_bytes;             /**< conversation ids, keys, names; 0: the default (255) */
    uint64_t max_title_bytes;          /**< 0: the default (1024) */
    uint64_t max_metadata_bytes;       /**< 0: the default (256 KiB) */
    uint64_t max_tool_calls;           /**< per message; 0: the default (128) */
    uint64_t max_batch;                /**< messages per batch append or agent reply; 0: the default (1000) */
    /* version 3 */
    convstate_log_fn log;              /**< where log messages go; NULL: nowhere */
    void *log_context;                 /**< passed to log as is */
    int log_level;                     /**< the least level sent to log (default CONVSTATE_LOG_INFO) */
} convstate_db_options;
/** The defaults: pool of 4, 10 s busy/connect timeouts, migrate on open, 8 retries, prepared
 *  statements, 30 s pool and statement timeouts, the default limits. */
#define CONVSTATE_DB_OPTIONS_INIT \
    {CONVSTATE_DB_OPTIONS_VERSION, 4, 10000, 10000, 1, 8, 0, 1, 30000, 30000, 0, 0, 0, 0, 0, 0, NULL, NULL, CONVSTATE_LOG_INFO}

/** Opens a database: "sqlite3:///abs/path.db", "sqlite3://relative.db" or
 *  "postgresql://user:password@host:port/dbname?sslmode=…". options may be NULL (defaults).
 *  On success *out is a handle to close with convstate_db_close; on failure *out is NULL.
 *  Returns CONVSTATE_INVALID_ARGUMENT for a NULL url or out, a bad URL, option or options
 *  version; CONVSTATE_STORAGE_ERROR when the database cannot be opened or its schema is newer
 *  than this library. */
CONVSTATE_C_API convstate_status convstate_db_open(const char *url, const convstate_db_options *options,
                                                   convstate_db **out);
/** Closes the handle and its connections. convstate_db_close(NULL) does nothing. The handle must
 *  not be in use by another thread. */
CONVSTATE_C_API void convstate_db_close(convstate_db *db);
/** Applies pending migrations (idempotent; safe from several processes at once).
 *  CONVSTATE_STORAGE_ERROR if the database's schema is newer than this library. */
CONVSTATE_C_API convstate_status convstate_db_migrate(convstate_db *db);
/** *out (required) receives the schema version recorded in the database (0 for an empty one). */
CONVSTATE_C_API convstate_status convstate_db_schema_version(convstate_db *db, int *out);

/** What a handle has done since it was opened (Database::stats()). */
typedef struct convstate_stats {
    uint64_t statements;   /**< statements sent to the server, i.e. round trips (BEGIN/COMMIT included) */
    uint64_t transactions; /**< write transactions committed */
    uint64_t retries;      /**< operations retried after a transient error */
} convstate_stats;
/** Fills *out with the handle's counters. */
CONVSTATE_C_API convstate_status convstate_db_stats(convstate_db *db, convstate_stats *out);
/** Every counter as JSON into *out_json (required): the three above, per-operation call and error
 *  counts with latency histograms, and the connection pool's leases, waits and wait histogram
 *  (docs/json.md, "Stats"). */
CONVSTATE_C_API convstate_status convstate_db_stats_json(convstate_db *db, char **out_json);
/** @} */

/** @name Conversations
 *  Every call is scoped to user_id: another user's conversation gives CONVSTATE_NOT_FOUND, like
 *  a missing one. Results are conversation JSON objects
 *  {"id","user_id","title","metadata","last_seq","created_at_us","updated_at_us","external_key",
 *  "forked_from"} (external_key: a string or null; forked_from: {"conversation_id","seq"} or
 *  null), returned in `*out_json` and freed with convstate_free(). */
/** @{ */

/** Creates a conversation with a new random id. title and metadata_json (a JSON object) may be
 *  NULL ("" and {}). out_json is required. */
CONVSTATE_C_API convstate_status convstate_conversation_create(convstate_db *db, const char *user_id,
                                                               const char *title, const char *metadata_json,
                                                               char **out_json);
/** The user's conversation with the host's own key external_key (required; unique per user, at
 *  most 255 bytes, no control characters), created with title and metadata_json (both may be
 *  NULL) if there is none. Callers racing with one new key get one conversation. *out_json
 *  (required) receives {"conversation": {…}, "created": bool}. A keyed conversation's id is
 *  derived from the user and the key (a UUIDv5); use it like any id. */
CONVSTATE_C_API convstate_status convstate_conversation_get_or_create(convstate_db *db, const char *user_id,
                                                                      const char *external_key, const char *title,
                                                                      const char *metadata_json, char **out_json);
/** The user's conversation with external_key into *out_json (required); CONVSTATE_NOT_FOUND if
 *  there is none. */
CONVSTATE_C_API convstate_status convstate_conversation_get_by_key(convstate_db *db, const char *user_id,
                                                                   const char *external_key, char **out_json);
/** Reads one conversation into *out_json (required). CONVSTATE_NOT_FOUND if it is missing or
 *  another user's. */
CONVSTATE_C_API convstate_status convstate_conversation_get(convstate_db *db, const char *user_id,
                                                            const char *conversation_id, char **out_json);
/** Lists the user's conversations, most recently updated first. cursor: NULL or "" for the first
 *  page, else a previous page's "next_cursor". limit: 1..100. Result (out_json is required):
 *  {"items":[…], "next_cursor": string, or null on the last page}. */
CONVSTATE_C_API convstate_status convstate_conversation_list(convstate_db *db, const char *user_id,
                                                             const char *cursor, int limit, char **out_json);
/** Sets the title (required; may be ""). out_json receives the updated conversation; it may be
 *  NULL when that is not wanted (also for set_metadata). Elsewhere in this group a
 *  `char **out_json` is required. */
CONVSTATE_C_API convstate_status convstate_conversation_rename(convstate_db *db, const char *user_id,
                                                               const char *conversation_id, const char *title,
                                                               char **out_json);
/** Replaces the metadata with metadata_json (required; a JSON object). out_json receives the
 *  updated conversation and may be NULL. */
CONVSTATE_C_API convstate_status convstate_conversation_set_metadata(convstate_db *db, const char *user_id,
                                                                     const char *conversation_id,
                                                                     const char *metadata_json, char **out_json);
/** Forks the conversation: a new one holding copies of its messages 1..at_seq and of the
 *  summaries covering at most at_seq (one statement each, on the server), with forked_from set.
 *  title, metadata_json and external_key may be NULL (the source's title and metadata; no key).
 *  From then on the fork is an ordinary conversation. Edit a message: fork before it and run the
 *  turn there; regenerate a reply: fork at its user message and run a turn with
 *  convstate_turn_options.regenerate. out_json (required) receives the fork.
 *  CONVSTATE_INVALID_ARGUMENT: "at_seq" negative, past the last message, or inside a tool-call
 *  group; "title", "metadata", "external_key". CONVSTATE_CONFLICT: external_key taken. */
CONVSTATE_C_API convstate_status convstate_conversation_fork(convstate_db *db, const char *user_id,
                                                             const char *conversation_id, int64_t at_seq,
                                                             const char *title, const char *metadata_json,
                                                             const char *external_key, char **out_json);
/** The conversations forked from this one, oldest first, as a JSON array into *out_json
 *  (required). */
CONVSTATE_C_API convstate_status convstate_conversation_forks(convstate_db *db, const char *user_id,
                                                              const char *conversation_id, char **out_json);
/** Deletes the conversation and its messages in one transaction. */
CONVSTATE_C_API convstate_status convstate_conversation_delete(convstate_db *db, const char *user_id,
                                                               const char *conversation_id);
/** Deletes everything of the user; *out_count (may be NULL) receives the number of conversations. */
CONVSTATE_C_API convstate_status convstate_conversation_delete_all(convstate_db *db, const char *user_id,
                                                                   uint64_t *out_count);
/** Retention: hard-deletes every conversation not updated since older_than_us (UTC
 *  microseconds) — of user_id, or of every user when user_id is NULL — with its messages, in
 *  transactions of batch_size conversations (0: 100). A conversation that receives a turn
 *  meanwhile is kept; each goes whole or not at all. dry_run != 0 counts without deleting.
 *  *out_conversations and *out_messages (each may be NULL) receive what was (or would be)
 *  deleted. CONVSTATE_INVALID_ARGUMENT names "older_than", "batch_size" or "user_id". */
CONVSTATE_C_API convstate_status convstate_conversations_purge(convstate_db *db, int64_t older_than_us,
                                                               const char *user_id, uint64_t batch_size,
                                                               int dry_run, uint64_t *out_conversations,
                                                               uint64_t *out_messages);
/** @} */

/** @name Messages
 *  Message JSON: {"role","content" (a string, or an OpenAI content-part array),"name"?,
 *  "tool_calls"?,"tool_call_id"?,"metadata"?,
 *  "token_count"?,"idempotency_key"?}; stored messages add "conversation_id","seq",
 *  "created_at_us". Lists are JSON arrays in seq order. Every call is scoped to user_id
 *  (CONVSTATE_NOT_FOUND for a missing or foreign conversation); `*out_json` results are freed
 *  with convstate_free(). */
/** @{ */

/** Appends one message (a JSON object). expected_last_seq may be NULL; otherwise the append
 *  happens only if the conversation's last seq equals *expected_last_seq (else CONFLICT).
 *  A message whose idempotency_key is stored already is returned as stored, not appended.
 *  out_json (may be NULL, also for append_batch) receives the stored message.
 *  CONVSTATE_OUTCOME_UNKNOWN: the connection was lost during COMMIT of a message without an
 *  idempotency key (it may or may not be stored). */
CONVSTATE_C_API convstate_status convstate_message_append(convstate_db *db, const char *user_id,
                                                          const char *conversation_id, const char *message_json,
                                                          const int64_t *expected_last_seq, char **out_json);
/** Appends a non-empty JSON array of messages (at most 1000) atomically, with consecutive seqs;
 *  out_json receives the array as stored. */
CONVSTATE_C_API convstate_status convstate_message_append_batch(convstate_db *db, const char *user_id,
                                                                const char *conversation_id,
                                                                const char *messages_json,
                                                                const int64_t *expected_last_seq, char **out_json);
/** Every message of the conversation, in seq order, into *out_json (required). */
CONVSTATE_C_API convstate_status convstate_message_load_all(convstate_db *db, const char *user_id,
                                                            const char *conversation_id, char **out_json);
/** The last n messages (n = 0: an empty array, after checking the conversation exists);
 *  out_json is required (also for load_after and load_before). */
CONVSTATE_C_API convstate_status convstate_message_load_last(convstate_db *db, const char *user_id,
                                                             const char *conversation_id, uint64_t n,
                                                             char **out_json);
/** Up to limit (1..10000) messages with seq > after_seq. */
CONVSTATE_C_API convstate_status convstate_message_load_after(convstate_db *db, const char *user_id,
                                                              const char *conversation_id, int64_t after_seq,
                                                              uint64_t limit, char **out_json);
/** Up to limit (1..10000) messages with seq < before_seq, the ones just before it. */
CONVSTATE_C_API convstate_status convstate_message_load_before(convstate_db *db, const char *user_id,
                                                               const char *conversation_id, int64_t before_seq,
                                                               uint64_t limit, char **out_json);
/** Undo: deletes the messages with seq > after_seq in one transaction and moves the
 *  conversation's last seq back to after_seq (seqs stay dense: the next message gets
 *  after_seq + 1). expected_last_seq may be NULL; otherwise nothing happens unless the last seq
 *  equals *expected_last_seq (else CONFLICT), so concurrent undos of one exchange remove it once.
 *  *out_removed (may be NULL) receives how many messages this call removed (0 when after_seq is
 *  at or past the end). Removed idempotency keys are forgotten; a split turn whose user message
 *  was removed cannot complete (NOT_FOUND). CONVSTATE_INVALID_ARGUMENT: "after_seq" negative or
 *  inside a tool-call group (the first removed message would be a tool result whose call is
 *  kept), "expected_last_seq" negative; nothing is removed. */
CONVSTATE_C_API convstate_status convstate_message_truncate(convstate_db *db, const char *user_id,
                                                            const char *conversation_id, int64_t after_seq,
                                                            const int64_t *expected_last_seq, int64_t *out_removed);
/** *out (required) receives the number of messages in the conversation. */
CONVSTATE_C_API convstate_status convstate_message_count(convstate_db *db, const char *user_id,
                                                         const char *conversation_id, int64_t *out);
/** @} */

/** @name Usage
 *  Report JSON: {"replies","prompt_tokens","completion_tokens","cached_tokens",
 *  "reasoning_tokens","by_model":[{"model": string or null, "replies", …}]} — sums of what the
 *  turns' replies reported (convstate_reply_set_usage, or "usage" in convstate_turn_complete's
 *  reply). */
/** @{ */

/** The conversation's usage into *out_json (required). It outlives a truncate of its replies
 *  (the tokens were spent) and goes with the conversation when it is deleted. */
CONVSTATE_C_API convstate_status convstate_usage(convstate_db *db, const char *user_id, const char *conversation_id,
                                                 char **out_json);
/** The user's usage recorded at or after since_us (UTC microseconds), over all their
 *  conversations, into *out_json (required). */
CONVSTATE_C_API convstate_status convstate_usage_since(convstate_db *db, const char *user_id, int64_t since_us,
                                                       char **out_json);
/** @} */

/** @name Summaries
 *  Summary JSON: {"conversation_id","covers_through_seq","content","metadata","created_at_us"}. */
/** @{ */

/** Stores a summary of messages 1..covers_through_seq (nothing is deleted); a summary with the
 *  same covers_through_seq is replaced. content (required) must not be empty; metadata_json may
 *  be NULL ({}). It never moves the last seq, and on PostgreSQL never waits for or blocks a
 *  turn. out_json (may be NULL) receives the summary. CONVSTATE_INVALID_ARGUMENT:
 *  "covers_through_seq" below 1, past the last message or inside a tool-call group; "content";
 *  "metadata". A truncate removes the summaries covering removed messages. */
CONVSTATE_C_API convstate_status convstate_summary_add(convstate_db *db, const char *user_id,
                                                       const char *conversation_id, int64_t covers_through_seq,
                                                       const char *content, const char *metadata_json,
                                                       char **out_json);
/** The conversation's summaries, by covers_through_seq, as a JSON array into *out_json
 *  (required). */
CONVSTATE_C_API convstate_status convstate_summary_list(convstate_db *db, const char *user_id,
                                                        const char *conversation_id, char **out_json);
/** @} */

/** @name History windows */
/** @{ */

/** The kinds of convstate_window. */
typedef enum convstate_window_kind {
    CONVSTATE_WINDOW_ALL = 0,           /**< every message */
    CONVSTATE_WINDOW_LAST_MESSAGES = 1, /**< the newest max_messages */
    CONVSTATE_WINDOW_TOKEN_BUDGET = 2   /**< the newest messages within token_budget */
} convstate_window_kind;

/** Chat roles, as convstate_window::summary_role takes them (elsewhere roles are JSON strings). */
typedef enum convstate_role {
    CONVSTATE_ROLE_SYSTEM = 0,
    CONVSTATE_ROLE_USER = 1,
    CONVSTATE_ROLE_ASSISTANT = 2,
    CONVSTATE_ROLE_TOOL = 3,
    CONVSTATE_ROLE_DEVELOPER = 4
} convstate_role;

/** The convstate_window::version this header knows. Version 2 added from_summary and
 *  summary_role; a version-1 struct is still accepted (from_summary on, role system). */
#define CONVSTATE_WINDOW_VERSION 2
/** What an agent sees: all messages, the last max_messages, or as many of the newest as fit
 *  token_budget (estimated tokens: stored token_count, else ceil(bytes/4)+4). Leading system
 *  (and developer) messages are kept when keep_system is nonzero; tool-call groups are never
 *  split. With from_summary, the latest summary (convstate_summary_add) stands for the messages
 *  it covers: the window is the kept system messages, the summary as one message without a seq
 *  (role summary_role), then the newest messages after it. */
typedef struct convstate_window {
    unsigned int version; /**< CONVSTATE_WINDOW_VERSION */
    int kind;             /**< a convstate_window_kind (an int: any value is checked, not trusted) */
    uint64_t max_messages; /**< for CONVSTATE_WINDOW_LAST_MESSAGES (>= 1) */
    int64_t token_budget;  /**< for CONVSTATE_WINDOW_TOKEN_BUDGET (>= 1) */
    int keep_system;       /**< nonzero: keep the conversation's leading system messages */
    int from_summary;      /**< nonzero: start from the latest summary, if there is one */
    int summary_role;      /**< a convstate_role: the summary message's role */
} convstate_window;
/** Every message, leading system messages kept, from the latest summary (as a system message). */
#define CONVSTATE_WINDOW_INIT {CONVSTATE_WINDOW_VERSION, CONVSTATE_WINDOW_ALL, 0, 0, 1, 1, CONVSTATE_ROLE_SYSTEM}

/** The window a turn would show the agent now, as a JSON array into *out_json (required).
 *  window NULL: all. CONVSTATE_INVALID_ARGUMENT for an unknown version or kind, or a
 *  max_messages or token_budget below 1 for its kind. */
CONVSTATE_C_API convstate_status convstate_window_load(convstate_db *db, const char *user_id,
                                                       const char *conversation_id, const convstate_window *window,
                                                       char **out_json);
/** @} */

/** @name The turn */
/** @{ */

/** The agent's reply under construction; valid only during the agent callback. */
typedef struct convstate_reply convstate_reply;

/** Sets the final reply's content (copied). Like every convstate_reply_ function:
 *  CONVSTATE_INVALID_ARGUMENT for a NULL argument. */
CONVSTATE_C_API convstate_status convstate_reply_set_content(convstate_reply *reply, const char *content);
/** Sets the final reply's tool calls from a JSON array in OpenAI format (copied).
 *  CONVSTATE_INVALID_ARGUMENT, naming the field, if it does not decode. */
CONVSTATE_C_API convstate_status convstate_reply_set_tool_calls(convstate_reply *reply, const char *tool_calls_json);
/** Adds an intermediate message (a JSON object: an assistant message carrying tool_calls or a
 *  tool message with tool_call_id), stored before the reply, in order. Only decoding is checked
 *  here; a message the turn cannot store fails the turn with CONVSTATE_AGENT_ERROR. */
CONVSTATE_C_API convstate_status convstate_reply_add_message(convstate_reply *reply, const char *message_json);
/** Sets the reply message's metadata (a JSON object; checked when the turn stores the reply). */
CONVSTATE_C_API convstate_status convstate_reply_set_metadata(convstate_reply *reply, const char *metadata_json);
/** Sets the usage the model reported for this reply, a JSON object {"model"?,"prompt_tokens"?,
 *  "completion_tokens"?,"cached_tokens"?,"reasoning_tokens"?} (copied; decoded here, counts
 *  checked when the turn stores it). It is recorded in the usage ledger with the reply
 *  (convstate_usage). */
CONVSTATE_C_API convstate_status convstate_reply_set_usage(convstate_reply *reply, const char *usage_json);
/** Records why the agent failed (copied); return a non-OK status from the callback to fail the
 *  turn. */
CONVSTATE_C_API convstate_status convstate_reply_set_error(convstate_reply *reply, const char *message);

/** The host's agent. history_json is the window as a JSON array ending with this turn's user
 *  message; user_id and conversation_id identify the turn. All three strings are borrowed for the
 *  duration of the call. Build the reply through `reply` and return CONVSTATE_OK; any other
 *  return value fails the turn with CONVSTATE_AGENT_ERROR (message from convstate_reply_set_error,
 *  else "the agent returned " and the status's name). context is convstate_turn's, passed through.
 *  Called on the thread that called convstate_turn, with no database connection held. */
typedef int (*convstate_agent_fn)(void *context, const char *history_json, const char *user_id,
                                  const char *conversation_id, convstate_reply *reply);

/** Version 2 added run_lease_ms and duplicate_wait_ms, version 3 flush_user_message, version 4
 *  conversation_key, version 5 regenerate, version 6 message_parts_json; structs of earlier versions are still accepted
 *  (their missing fields take the defaults). */
#define CONVSTATE_TURN_OPTIONS_VERSION 6
/** Options of convstate_turn; initialise with CONVSTATE_TURN_OPTIONS_INIT. Strings are copied
 *  during the call. */
typedef struct convstate_turn_options {
    unsigned int version;                   /**< CONVSTATE_TURN_OPTIONS_VERSION */
    const char *conversation_id;            /**< NULL: create a conversation */
    const char *idempotency_key;            /**< NULL: none. Same key again: no duplicate */
    const char *title;                      /**< title of a created conversation (NULL: "") */
    const char *conversation_metadata_json; /**< metadata of a created conversation (NULL: {}) */
    const char *message_metadata_json;      /**< metadata of the user message (NULL: {}) */
    const convstate_window *window;         /**< NULL: all messages */
    int reject_concurrent;                  /**< nonzero: CONFLICT while another turn runs on it */
    /** How long a running turn counts as alive, in ms (0: the default, 120000; at most
     *  86400000): its reject_concurrent mark, and a keyed turn's claim on running its agent; a
     *  turn whose process died is taken over after this. */
    long long run_lease_ms;
    /** How long a keyed turn waits, in ms, while an identical turn (same key) runs its agent
     *  elsewhere, then returns that turn's result (0: the default, 30000; at most 86400000).
     *  Still running after that: CONVSTATE_CONFLICT (retry later with the same key). */
    long long duplicate_wait_ms;
    /** PostgreSQL: nonzero makes the user message's commit wait for its WAL flush (two flushes per
     *  turn). 0 (the default): one flush per turn — the reply's commit flushes the user message
     *  too; a server crash before the turn completes may lose that user message, never a
     *  completed turn (see OrchestratorOptions::flush_user_message). */
    int flush_user_message;
    /** The host's own key of the conversation, in place of conversation_id (not both): the turn
     *  continues the user's conversation with this key or creates it (with title and
     *  conversation_metadata_json). Concurrent first turns with one new key land in one
     *  conversation. NULL: none. */
    const char *conversation_key;
    /** Nonzero: run the turn without a new user message (message must be ""): the agent answers
     *  the conversation's last message, which must be a user message ("regenerate" otherwise) —
     *  in a fork made at it, or after a failed turn. Needs conversation_id or conversation_key;
     *  idempotency_key must be NULL. */
    int regenerate;
    /** The user's content as an OpenAI content-part array (JSON text: text, image_url,
     *  input_audio, file parts), in place of message (which must then be ""). NULL: none. */
    const char *message_parts_json;
} convstate_turn_options;
/** No conversation (create one), no key, all messages, concurrent turns allowed, default times,
 *  one WAL flush per turn. */
#define CONVSTATE_TURN_OPTIONS_INIT {CONVSTATE_TURN_OPTIONS_VERSION, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, 0, 0, NULL, 0, NULL}

/** Runs one stateless turn: resolve (or create) the conversation, store the user message, load
 *  the window, call agent(context, …), store its output atomically. options may be NULL; db,
 *  user_id, message, agent and out_json are required. out_json receives {"conversation_id",
 *  "reply","tool_calls","user_seq","reply_seq","created","replayed","intermediate"}, freed with
 *  convstate_free(). On CONVSTATE_AGENT_ERROR it receives {"conversation_id","user_seq","created",…}
 *  too — where the user message was stored (free it as well) — so a turn that created its
 *  conversation can be continued. On any other failure *out_json is left unchanged.
 *  Statuses: CONVSTATE_INVALID_ARGUMENT (nothing written), CONVSTATE_NOT_FOUND,
 *  CONVSTATE_CONFLICT (reject_concurrent, a key used by a different message, or an identical
 *  keyed turn still running), CONVSTATE_AGENT_ERROR (the agent failed or its reply was invalid),
 *  CONVSTATE_STORAGE_ERROR, CONVSTATE_OUTCOME_UNKNOWN. */
CONVSTATE_C_API convstate_status convstate_turn(convstate_db *db, const char *user_id, const char *message,
                                                const convstate_turn_options *options, convstate_agent_fn agent,
                                                void *context, char **out_json);

/** The first half of a split turn, for hosts that await or stream their model: resolve (or
 *  create) the conversation, store the user message and load the window, committed, then return.
 *  options as for convstate_turn (may be NULL). *out_json receives {"conversation_id",
 *  "user_seq","created","history","token","completed"}: run the model on history (ending with
 *  this turn's user message), then call convstate_turn_complete or convstate_turn_fail with
 *  token — from any thread, process or instance. When a keyed retry finds the turn completed,
 *  token is null and completed holds its stored result (as convstate_turn's out_json, replayed
 *  true): there is nothing to run. Free *out_json with convstate_free().
 *  Statuses: as convstate_turn, without CONVSTATE_AGENT_ERROR. */
CONVSTATE_C_API convstate_status convstate_turn_begin(convstate_db *db, const char *user_id, const char *message,
                                                      const convstate_turn_options *options, char **out_json);

/** The second half of a split turn: stores reply_json — {"content","tool_calls"?,
 *  "intermediate"?,"metadata"?,"usage"?}, the reply an agent builds (an unknown field is refused) —
 *  after the messages already there, atomically. *out_json receives the result as
 *  convstate_turn's. Completing again stores nothing and returns the stored result (replayed).
 *  Statuses: CONVSTATE_INVALID_ARGUMENT naming the field (a token not from convstate_turn_begin:
 *  "turn_token"; an invalid reply: "reply.content", "intermediate[0].role", …; nothing is
 *  written and the turn stays pending), CONVSTATE_NOT_FOUND (another user's token, or the
 *  conversation was deleted), CONVSTATE_STORAGE_ERROR, CONVSTATE_OUTCOME_UNKNOWN (retrying
 *  stores once). */
CONVSTATE_C_API convstate_status convstate_turn_complete(convstate_db *db, const char *user_id, const char *token,
                                                         const char *reply_json, char **out_json);

/** Ends a split turn without a reply (the model failed, the client went away): the user
 *  message stays, the turn's reject_concurrent mark is cleared and a keyed turn released, so a
 *  retry with the key runs at once. reason may be NULL; it is checked (UTF-8) but not stored.
 *  Failing a completed turn changes nothing. Statuses: CONVSTATE_INVALID_ARGUMENT
 *  ("turn_token", "reason"), CONVSTATE_NOT_FOUND, CONVSTATE_STORAGE_ERROR. */
CONVSTATE_C_API convstate_status convstate_turn_fail(convstate_db *db, const char *user_id, const char *token,
                                                     const char *reason);
/** @} */

#ifdef __cplusplus
}
#endif

#endif /* CONVSTATE_H */
