//! Safe Rust bindings to **convstate**: stateless conversation handling for chat and agent
//! servers, over the library's C API (`libconvstate_c`).
//!
//! A [`Database`] is a pool of connections to SQLite or PostgreSQL, shareable between threads
//! (`Send + Sync`; wrap it in an `Arc`). Every call is scoped to a user id. A turn
//! ([`Database::turn`]) stores the user message, shows your agent the history window, and
//! stores what the agent produced — nothing is kept in memory between requests.
//!
//! ```no_run
//! use convstate::{AgentReply, Database, TurnOptions};
//!
//! let db = Database::open("sqlite3:///tmp/chat.db")?;
//! let result = db.turn("alice", "Hello!", &TurnOptions::default(), |history, _user, _conversation| {
//!     Ok(AgentReply::text(format!("You said {:?}", history.last().unwrap().content)))
//! })?;
//! println!("{}: {}", result.conversation_id, result.reply);
//! # Ok::<(), convstate::Error>(())
//! ```
//!
//! Building needs the environment variable `CONVSTATE_LIB_DIR` naming the directory that holds
//! `libconvstate_c.so`; see the crate's README.

// Every unsafe operation sits in its own `unsafe` block with a SAFETY note, also inside an
// `unsafe fn` (the default from edition 2024 on; with this, rustc 1.63 does not call them unused).
#![deny(unsafe_op_in_unsafe_fn)]

use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int, c_void};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::{self, NonNull};

pub mod json;
pub mod sys;
mod types;

pub use json::Value;
pub use types::{
    Conversation, ConversationPage, ForkOrigin, Message, PendingTurn, Role, Summary, ToolCall, TurnResult,
};

// ---- Errors ----------------------------------------------------------------------------------

/// An error of the library, one variant per C status code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Missing, or another user's (indistinguishable).
    NotFound(String),
    /// Bad input; nothing was written. `field` names it ("user_id", "messages[2].content"…).
    InvalidArgument { field: String, message: String },
    /// `expected_last_seq` mismatch, or a concurrent turn rejected.
    Conflict(String),
    /// The database failed after bounded retries.
    Storage(String),
    /// The connection was lost during COMMIT of an unkeyed write: it may or may not be stored.
    OutcomeUnknown(String),
    /// The agent failed (returned `Err` or panicked); only the user message is stored.
    Agent(String),
    /// Anything else (out of memory, a library/binding mismatch…).
    Internal(String),
}

impl Error {
    /// The error message (without the kind).
    pub fn message(&self) -> &str {
        match self {
            Error::NotFound(m)
            | Error::Conflict(m)
            | Error::Storage(m)
            | Error::OutcomeUnknown(m)
            | Error::Agent(m)
            | Error::Internal(m) => m,
            Error::InvalidArgument { message, .. } => message,
        }
    }

    /// The C status code of this error.
    pub fn status(&self) -> sys::convstate_status {
        match self {
            Error::NotFound(_) => sys::CONVSTATE_NOT_FOUND,
            Error::InvalidArgument { .. } => sys::CONVSTATE_INVALID_ARGUMENT,
            Error::Conflict(_) => sys::CONVSTATE_CONFLICT,
            Error::Storage(_) => sys::CONVSTATE_STORAGE_ERROR,
            Error::OutcomeUnknown(_) => sys::CONVSTATE_OUTCOME_UNKNOWN,
            Error::Agent(_) => sys::CONVSTATE_AGENT_ERROR,
            Error::Internal(_) => sys::CONVSTATE_INTERNAL_ERROR,
        }
    }

    /// Builds the error for a non-OK status from this thread's last error. Call it right after
    /// the failing call, before any other convstate call on this thread.
    fn from_last(status: sys::convstate_status) -> Error {
        // SAFETY: both functions return non-NULL, NUL-terminated strings that stay valid until
        // the next convstate call on this thread; they are copied at once.
        let message = unsafe { borrowed_str(sys::convstate_last_error()) };
        let field = unsafe { borrowed_str(sys::convstate_last_error_field()) };
        match status {
            sys::CONVSTATE_NOT_FOUND => Error::NotFound(message),
            sys::CONVSTATE_INVALID_ARGUMENT => Error::InvalidArgument { field, message },
            sys::CONVSTATE_CONFLICT => Error::Conflict(message),
            sys::CONVSTATE_STORAGE_ERROR => Error::Storage(message),
            sys::CONVSTATE_OUTCOME_UNKNOWN => Error::OutcomeUnknown(message),
            sys::CONVSTATE_AGENT_ERROR => Error::Agent(message),
            sys::CONVSTATE_INTERNAL_ERROR => Error::Internal(message),
            other => Error::Internal(format!("unknown status {other}: {message}")),
        }
    }

    fn invalid(field: &str, message: impl Into<String>) -> Error {
        Error::InvalidArgument { field: field.to_owned(), message: message.into() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotFound(m) => write!(f, "not found: {m}"),
            // The library's message already reads "invalid FIELD: reason".
            Error::InvalidArgument { message, .. } => f.write_str(message),
            Error::Conflict(m) => write!(f, "conflict: {m}"),
            Error::Storage(m) => write!(f, "storage error: {m}"),
            Error::OutcomeUnknown(m) => write!(f, "outcome unknown: {m}"),
            Error::Agent(m) => write!(f, "agent error: {m}"),
            Error::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl std::error::Error for Error {}

// ---- FFI helpers -----------------------------------------------------------------------------

/// Copies a borrowed C string ("" for NULL; invalid UTF-8 replaced).
unsafe fn borrowed_str(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        // SAFETY: the caller passes NULL or a NUL-terminated string alive for this call.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

/// `s` as a C string; a NUL byte inside is an InvalidArgument naming `field`.
fn cstring(field: &str, s: &str) -> Result<CString, Error> {
    CString::new(s).map_err(|_| Error::invalid(field, format!("invalid {field}: contains a NUL byte")))
}

fn opt_cstring(field: &str, s: Option<&str>) -> Result<Option<CString>, Error> {
    s.map(|s| cstring(field, s)).transpose()
}

fn opt_ptr(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(ptr::null(), |s| s.as_ptr())
}

/// A `char*` result owned by us, freed with convstate_free.
struct OwnedCString(*mut c_char);

impl OwnedCString {
    fn take(self) -> Result<String, Error> {
        if self.0.is_null() {
            return Err(Error::Internal("the library returned no result".into()));
        }
        // SAFETY: the library returned a NUL-terminated string it allocated.
        let bytes = unsafe { CStr::from_ptr(self.0) }.to_bytes();
        String::from_utf8(bytes.to_vec()).map_err(|_| Error::Internal("the library returned invalid UTF-8".into()))
    }
}

impl Drop for OwnedCString {
    fn drop(&mut self) {
        // SAFETY: the pointer came from the library (or is NULL, which convstate_free ignores).
        unsafe { sys::convstate_free(self.0.cast::<c_void>()) }
    }
}

/// Runs a call that fills a `char**` and parses the JSON it returns.
fn call_json(f: impl FnOnce(*mut *mut c_char) -> sys::convstate_status) -> Result<Value, Error> {
    let mut out: *mut c_char = ptr::null_mut();
    let status = f(&mut out);
    let owned = OwnedCString(out);
    // The error is read before `owned` is freed: nothing else may run in between.
    check(status)?;
    let text = owned.take()?;
    json::parse(&text).map_err(|e| Error::Internal(format!("the library returned {e}")))
}

fn check(status: sys::convstate_status) -> Result<(), Error> {
    if status == sys::CONVSTATE_OK {
        Ok(())
    } else {
        Err(Error::from_last(status))
    }
}

/// Library output that does not decode is the library's (or this binding's) fault.
fn decoded<T>(r: Result<T, Error>) -> Result<T, Error> {
    r.map_err(|e| Error::Internal(format!("unexpected JSON from the library: {}", e.message())))
}

/// The version of the loaded C library, "MAJOR.MINOR.PATCH".
pub fn version() -> String {
    // SAFETY: static storage, never NULL.
    unsafe { borrowed_str(sys::convstate_version_string()) }
}

/// The loaded C library's version number (MAJOR*10000 + MINOR*100 + PATCH).
pub fn version_number() -> i32 {
    // SAFETY: no arguments, no preconditions.
    unsafe { sys::convstate_version_number() }
}

/// A stable name for a status code ("CONVSTATE_NOT_FOUND"…).
pub fn status_name(status: sys::convstate_status) -> String {
    // SAFETY: static storage, never NULL.
    unsafe { borrowed_str(sys::convstate_status_name(status as c_int)) }
}

// ---- Options ---------------------------------------------------------------------------------

/// Options for [`Database::open_with`]; `Options::default()` matches `CONVSTATE_DB_OPTIONS_INIT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Connections kept open (>= 1).
    pub pool_size: u32,
    /// SQLite: how long to wait for another writer.
    pub busy_timeout_ms: u32,
    /// PostgreSQL: connect timeout.
    pub connect_timeout_ms: u32,
    /// Apply pending migrations in open.
    pub migrate_on_open: bool,
    /// Transient-error retries per operation.
    pub max_retries: i32,
    /// Largest message content accepted; 0: the library's default (8 MiB).
    pub max_content_bytes: u64,
    /// PostgreSQL: keep statements prepared per connection; `false` behind a
    /// transaction-pooling proxy such as pgbouncer.
    pub prepared_statements: bool,
    /// How long to wait for a free pooled connection (0: fail at once).
    pub pool_timeout_ms: u32,
    /// PostgreSQL: the longest a statement may run (1 ms to 24 h).
    pub statement_timeout_ms: u32,
    /// Input limits; 0 keeps the library's default (255, 255, 1024, 256 KiB, 128, 1000).
    pub max_user_id_bytes: u64,
    /// Conversation ids, tool call ids, idempotency keys, names.
    pub max_id_bytes: u64,
    /// Conversation titles.
    pub max_title_bytes: u64,
    /// Metadata JSON text.
    pub max_metadata_bytes: u64,
    /// Tool calls per message.
    pub max_tool_calls: u64,
    /// Messages per batch append or agent reply.
    pub max_batch: u64,
}

/// What a [`Database`] has done since it was opened ([`Database::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Statements sent to the server, i.e. round trips (BEGIN and COMMIT included).
    pub statements: u64,
    /// Write transactions committed.
    pub transactions: u64,
    /// Operations retried after a transient error.
    pub retries: u64,
}

impl Default for Options {
    fn default() -> Options {
        let init = sys::CONVSTATE_DB_OPTIONS_INIT;
        Options {
            pool_size: init.pool_size,
            busy_timeout_ms: init.busy_timeout_ms,
            connect_timeout_ms: init.connect_timeout_ms,
            migrate_on_open: init.migrate_on_open != 0,
            max_retries: init.max_retries,
            max_content_bytes: init.max_content_bytes,
            prepared_statements: init.prepared_statements != 0,
            pool_timeout_ms: init.pool_timeout_ms,
            statement_timeout_ms: init.statement_timeout_ms,
            max_user_id_bytes: init.max_user_id_bytes,
            max_id_bytes: init.max_id_bytes,
            max_title_bytes: init.max_title_bytes,
            max_metadata_bytes: init.max_metadata_bytes,
            max_tool_calls: init.max_tool_calls,
            max_batch: init.max_batch,
        }
    }
}

impl Options {
    fn to_sys(&self) -> sys::convstate_db_options {
        sys::convstate_db_options {
            version: sys::CONVSTATE_DB_OPTIONS_VERSION,
            pool_size: self.pool_size,
            busy_timeout_ms: self.busy_timeout_ms,
            connect_timeout_ms: self.connect_timeout_ms,
            migrate_on_open: c_int::from(self.migrate_on_open),
            max_retries: self.max_retries,
            max_content_bytes: self.max_content_bytes,
            prepared_statements: c_int::from(self.prepared_statements),
            pool_timeout_ms: self.pool_timeout_ms,
            statement_timeout_ms: self.statement_timeout_ms,
            max_user_id_bytes: self.max_user_id_bytes,
            max_id_bytes: self.max_id_bytes,
            max_title_bytes: self.max_title_bytes,
            max_metadata_bytes: self.max_metadata_bytes,
            max_tool_calls: self.max_tool_calls,
            max_batch: self.max_batch,
            log: None,
            log_context: ptr::null_mut(),
            log_level: sys::CONVSTATE_LOG_INFO,
        }
    }
}

/// How much a log message matters ([`Database::open_with_logger`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Details for diagnosis (may quote a database's error text).
    Debug,
    /// Opening a database, migrations.
    Info,
    /// Reconnects, retries after transient errors, pool timeouts.
    Warning,
    /// Storage errors (by code), writes of unknown outcome.
    Error,
}

impl LogLevel {
    fn to_sys(self) -> c_int {
        match self {
            LogLevel::Debug => sys::CONVSTATE_LOG_DEBUG,
            LogLevel::Info => sys::CONVSTATE_LOG_INFO,
            LogLevel::Warning => sys::CONVSTATE_LOG_WARNING,
            LogLevel::Error => sys::CONVSTATE_LOG_ERROR,
        }
    }

    fn from_sys(level: c_int) -> LogLevel {
        match level {
            sys::CONVSTATE_LOG_DEBUG => LogLevel::Debug,
            sys::CONVSTATE_LOG_INFO => LogLevel::Info,
            sys::CONVSTATE_LOG_WARNING => LogLevel::Warning,
            _ => LogLevel::Error,
        }
    }
}

/// Receives the library's log messages; called from any thread, possibly several at once.
pub type Logger = dyn Fn(LogLevel, &str) + Send + Sync + 'static;

unsafe extern "C" fn forward_log(context: *mut c_void, level: c_int, message: *const c_char) {
    // SAFETY: context is the &Box<Logger> the Database keeps alive until the handle is closed;
    // message is a NUL-terminated string valid during the call.
    let (logger, text) = unsafe { (&*(context as *const Box<Logger>), CStr::from_ptr(message).to_string_lossy()) };
    // A panicking logger must not unwind into C.
    let _ = catch_unwind(AssertUnwindSafe(|| logger(LogLevel::from_sys(level), &text)));
}

/// Which part of the history an agent sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WindowKind {
    /// Every message.
    #[default]
    All,
    /// The last N messages (after the leading system messages).
    LastMessages(u64),
    /// As many of the newest messages as fit this many estimated tokens (stored token_count,
    /// else ceil(bytes/4)+4).
    TokenBudget(i64),
}

/// A history window. Leading system messages are kept when `keep_system` (the default);
/// tool-call groups are never split. With `from_summary` (the default), the latest summary
/// (`Database::add_summary`) stands for the messages it covers: it follows the kept system
/// messages as one message with seq 0 and role `summary_role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub kind: WindowKind,
    pub keep_system: bool,
    pub from_summary: bool,
    pub summary_role: Role,
}

impl Default for Window {
    fn default() -> Window {
        Window::all()
    }
}

impl Window {
    fn of(kind: WindowKind) -> Window {
        Window { kind, keep_system: true, from_summary: true, summary_role: Role::System }
    }
    pub fn all() -> Window {
        Window::of(WindowKind::All)
    }
    pub fn last(n: u64) -> Window {
        Window::of(WindowKind::LastMessages(n))
    }
    pub fn tokens(budget: i64) -> Window {
        Window::of(WindowKind::TokenBudget(budget))
    }
    pub fn keep_system(mut self, keep: bool) -> Window {
        self.keep_system = keep;
        self
    }
    pub fn from_summary(mut self, on: bool) -> Window {
        self.from_summary = on;
        self
    }
    pub fn summary_role(mut self, role: Role) -> Window {
        self.summary_role = role;
        self
    }

    fn to_sys(self) -> sys::convstate_window {
        let mut w = sys::CONVSTATE_WINDOW_INIT;
        match self.kind {
            WindowKind::All => w.kind = sys::CONVSTATE_WINDOW_ALL,
            WindowKind::LastMessages(n) => {
                w.kind = sys::CONVSTATE_WINDOW_LAST_MESSAGES;
                w.max_messages = n;
            }
            WindowKind::TokenBudget(b) => {
                w.kind = sys::CONVSTATE_WINDOW_TOKEN_BUDGET;
                w.token_budget = b;
            }
        }
        w.keep_system = c_int::from(self.keep_system);
        w.from_summary = c_int::from(self.from_summary);
        w.summary_role = match self.summary_role {
            Role::System => sys::CONVSTATE_ROLE_SYSTEM,
            Role::User => sys::CONVSTATE_ROLE_USER,
            Role::Assistant => sys::CONVSTATE_ROLE_ASSISTANT,
            Role::Tool => sys::CONVSTATE_ROLE_TOOL,
            Role::Developer => sys::CONVSTATE_ROLE_DEVELOPER,
        };
        w
    }
}

/// Options of one turn.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TurnOptions {
    /// `None`: create a conversation.
    pub conversation_id: Option<String>,
    /// Retrying with the same key never stores the exchange twice: a completed turn returns the
    /// stored result without calling the agent; a turn whose agent failed runs it again.
    pub idempotency_key: Option<String>,
    /// Title of a created conversation (`None`: "").
    pub title: Option<String>,
    /// Metadata (a JSON object) of a created conversation (`None`: `{}`).
    pub conversation_metadata: Option<Value>,
    /// Metadata (a JSON object) of the user message (`None`: `{}`).
    pub message_metadata: Option<Value>,
    /// `None`: all messages.
    pub window: Option<Window>,
    /// Fail with `Conflict` while another turn (also with this flag) runs on the conversation.
    pub reject_concurrent: bool,
    /// How long a running turn counts as alive (`None`: 120 s): its `reject_concurrent` mark and
    /// a keyed turn's claim on running its agent; a turn whose process died is taken over after it.
    pub run_lease: Option<std::time::Duration>,
    /// How long a keyed turn waits while an identical turn (same key) runs its agent elsewhere,
    /// then returns that turn's result (`None`: 30 s); still running after that: `Conflict`.
    pub duplicate_wait: Option<std::time::Duration>,
    /// PostgreSQL: make the user message's commit wait for its WAL flush too (two flushes per
    /// turn). `false` (default): the reply's commit flushes it; a server crash before the turn
    /// completes may lose the user message, never a completed turn.
    pub flush_user_message: bool,
    /// The host's own key of the conversation (a session or thread id, unique per user), in
    /// place of `conversation_id`: the turn continues the user's conversation with this key or
    /// creates it (with `title` and `conversation_metadata`).
    pub conversation_key: Option<String>,
    /// Run the turn without a new user message (pass ""): the agent answers the conversation's
    /// last message, which must be a user message — in a fork made at it, or after a failed turn.
    pub regenerate: bool,
    /// The user's content as an OpenAI content-part array, in place of the message text (pass
    /// "" as the message).
    pub message_parts: Option<Value>,
}

impl TurnOptions {
    /// Options continuing `conversation_id`.
    pub fn in_conversation(conversation_id: impl Into<String>) -> TurnOptions {
        TurnOptions { conversation_id: Some(conversation_id.into()), ..TurnOptions::default() }
    }
    /// Options addressing the conversation by the host's own key (get-or-create).
    pub fn by_key(conversation_key: impl Into<String>) -> TurnOptions {
        TurnOptions { conversation_key: Some(conversation_key.into()), ..TurnOptions::default() }
    }
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> TurnOptions {
        self.idempotency_key = Some(key.into());
        self
    }
    pub fn with_window(mut self, window: Window) -> TurnOptions {
        self.window = Some(window);
        self
    }
    pub fn with_title(mut self, title: impl Into<String>) -> TurnOptions {
        self.title = Some(title.into());
        self
    }
}

/// What the agent returns: the reply, and the messages of an agent loop before it (assistant
/// messages carrying tool calls, tool messages with their tool_call_id), stored in order in the
/// same transaction as the reply.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentReply {
    pub content: String,
    pub tool_calls: Vec<ToolCall>,
    pub intermediate: Vec<Message>,
    /// Stored on the reply message (a JSON object).
    pub metadata: Value,
    /// What the model reported, recorded in the usage ledger with the reply.
    pub usage: Option<Usage>,
}

impl Default for AgentReply {
    fn default() -> AgentReply {
        AgentReply {
            content: String::new(),
            tool_calls: Vec::new(),
            intermediate: Vec::new(),
            metadata: Value::object(),
            usage: None,
        }
    }
}

/// Tokens a model reported for one reply; every field optional.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Usage {
    pub model: Option<String>,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub cached_tokens: Option<i64>,
    pub reasoning_tokens: Option<i64>,
}

impl Usage {
    /// {"model"?,"prompt_tokens"?,…}: the fields that are set.
    pub fn to_json(&self) -> Value {
        let mut v = Value::object();
        if let Some(m) = &self.model {
            v.set("model", m.as_str());
        }
        for (name, n) in [
            ("prompt_tokens", self.prompt_tokens),
            ("completion_tokens", self.completion_tokens),
            ("cached_tokens", self.cached_tokens),
            ("reasoning_tokens", self.reasoning_tokens),
        ] {
            if let Some(n) = n {
                v.set(name, n);
            }
        }
        v
    }
}

/// Sums of recorded usage (`Database::usage`): in total, and per model (`None`: replies that
/// named none).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UsageTotals {
    pub model: Option<String>,
    pub replies: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cached_tokens: i64,
    pub reasoning_tokens: i64,
}

/// What `Database::purge` deleted (or, on a dry run, would delete).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PurgeResult {
    pub conversations: u64,
    pub messages: u64,
}

/// What `Database::usage` and `usage_since` return.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UsageReport {
    pub total: UsageTotals,
    pub by_model: Vec<UsageTotals>,
}

impl UsageReport {
    fn from_json(v: &Value) -> Result<UsageReport, Error> {
        let totals = |o: &Value, model: Option<String>| -> Result<UsageTotals, Error> {
            let n = |k: &str| o.get(k).and_then(Value::as_i64).ok_or_else(|| Error::Internal(format!("usage: no {k}")));
            Ok(UsageTotals {
                model,
                replies: n("replies")?,
                prompt_tokens: n("prompt_tokens")?,
                completion_tokens: n("completion_tokens")?,
                cached_tokens: n("cached_tokens")?,
                reasoning_tokens: n("reasoning_tokens")?,
            })
        };
        let by_model = match v.get("by_model").and_then(Value::as_array) {
            Some(items) => items
                .iter()
                .map(|m| totals(m, m.get("model").and_then(Value::as_str).map(str::to_owned)))
                .collect::<Result<Vec<_>, _>>()?,
            None => return Err(Error::Internal("usage: no by_model".into())),
        };
        Ok(UsageReport { total: totals(v, None)?, by_model })
    }
}

impl AgentReply {
    /// A plain text reply.
    pub fn text(content: impl Into<String>) -> AgentReply {
        AgentReply { content: content.into(), ..AgentReply::default() }
    }

    /// The reply as convstate_turn_complete takes it: {"content","tool_calls","intermediate",
    /// "metadata"}.
    pub fn to_json(&self) -> Value {
        let mut v = Value::object().with("content", self.content.as_str());
        if !self.tool_calls.is_empty() {
            v.set("tool_calls", ToolCall::list_to_json(&self.tool_calls));
        }
        if !self.intermediate.is_empty() {
            v.set("intermediate", Value::Array(self.intermediate.iter().map(Message::input_json).collect()));
        }
        if !self.metadata.is_null() {
            v.set("metadata", self.metadata.clone());
        }
        if let Some(u) = &self.usage {
            v.set("usage", u.to_json());
        }
        v
    }
}

// ---- Database --------------------------------------------------------------------------------

/// An open database: a pool of connections, used from any number of threads at once.
/// Closed when dropped.
pub struct Database {
    raw: NonNull<sys::convstate_db>,
    // The logger the C handle calls (open_with_logger); dropped after the handle is closed.
    _logger: Option<Box<Box<Logger>>>,
}

// SAFETY: the C handle is thread-safe (documented: "a convstate_db may be used from any number
// of threads at once"); close happens only in Drop, when no other reference can exist.
unsafe impl Send for Database {}
unsafe impl Sync for Database {}

impl Drop for Database {
    fn drop(&mut self) {
        // SAFETY: the handle came from convstate_db_open and is closed exactly once.
        unsafe { sys::convstate_db_close(self.raw.as_ptr()) }
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database").field("raw", &self.raw).finish()
    }
}

impl Database {
    /// Opens (and by default migrates) a database: `sqlite3:///abs/path.db`,
    /// `sqlite3://relative.db` or `postgresql://user:password@host:port/dbname?sslmode=…`.
    pub fn open(url: &str) -> Result<Database, Error> {
        Database::open_with(url, &Options::default())
    }

    pub fn open_with(url: &str, options: &Options) -> Result<Database, Error> {
        Database::open_inner(url, options, None)
    }

    /// As [`Database::open_with`], with the library's log messages at `level` and above sent
    /// to `logger` (nothing is logged otherwise). Messages never hold a password; message
    /// content appears only at [`LogLevel::Debug`], in error details the database returned.
    pub fn open_with_logger<F>(url: &str, options: &Options, level: LogLevel, logger: F) -> Result<Database, Error>
    where
        F: Fn(LogLevel, &str) + Send + Sync + 'static,
    {
        let boxed: Box<Logger> = Box::new(logger);
        Database::open_inner(url, options, Some((level, Box::new(boxed))))
    }

    fn open_inner(url: &str, options: &Options, logger: Option<(LogLevel, Box<Box<Logger>>)>) -> Result<Database, Error> {
        let loaded = version_number();
        if loaded / 10000 != sys::CONVSTATE_VERSION_MAJOR {
            return Err(Error::Internal(format!(
                "libconvstate_c is version {} but these bindings were written for major version {}",
                version(),
                sys::CONVSTATE_VERSION_MAJOR
            )));
        }
        let url = cstring("url", url)?;
        let mut options = options.to_sys();
        if let Some((level, logger)) = &logger {
            options.log = Some(forward_log);
            options.log_context = &**logger as *const Box<Logger> as *mut c_void;
            options.log_level = level.to_sys();
        }
        let mut raw: *mut sys::convstate_db = ptr::null_mut();
        // SAFETY: valid C string, options struct and out-pointer; the logger outlives the handle.
        check(unsafe { sys::convstate_db_open(url.as_ptr(), &options, &mut raw) })?;
        let logger = logger.map(|(_, l)| l);
        NonNull::new(raw)
            .map(|raw| Database { raw, _logger: logger })
            .ok_or_else(|| Error::Internal("convstate_db_open returned no handle".into()))
    }

    fn db(&self) -> *mut sys::convstate_db {
        self.raw.as_ptr()
    }

    /// Applies pending migrations (idempotent; safe from several processes at once).
    pub fn migrate(&self) -> Result<(), Error> {
        // SAFETY: valid handle.
        check(unsafe { sys::convstate_db_migrate(self.db()) })
    }

    /// The schema version recorded in the database.
    pub fn schema_version(&self) -> Result<i32, Error> {
        let mut out: c_int = 0;
        // SAFETY: valid handle and out-pointer.
        check(unsafe { sys::convstate_db_schema_version(self.db(), &mut out) })?;
        Ok(out)
    }

    /// What this handle has done since it was opened.
    pub fn stats(&self) -> Result<Stats, Error> {
        let mut out = sys::convstate_stats::default();
        // SAFETY: valid handle and out-pointer.
        check(unsafe { sys::convstate_db_stats(self.db(), &mut out) })?;
        Ok(Stats { statements: out.statements, transactions: out.transactions, retries: out.retries })
    }

    /// Every counter as JSON: `statements`, `transactions`, `retries`, `bounds_us` (the latency
    /// buckets' upper bounds), `operations` (per operation — "append", "turn", … — `calls`,
    /// `errors` and a `latency` histogram of `count`, `sum_us` and `counts` per bucket, the last
    /// unbounded) and `pool` (`acquisitions`, `waits`, `timeouts`, `wait` histogram).
    pub fn stats_json(&self) -> Result<Value, Error> {
        call_json(|out| unsafe {
            // SAFETY: valid handle and out-pointer.
            sys::convstate_db_stats_json(self.db(), out)
        })
    }

    // ---- Conversations ----

    /// Creates a conversation; `metadata` must be a JSON object (`None`: `{}`).
    pub fn create_conversation(
        &self,
        user_id: &str,
        title: Option<&str>,
        metadata: Option<&Value>,
    ) -> Result<Conversation, Error> {
        let user = cstring("user_id", user_id)?;
        let title = opt_cstring("title", title)?;
        let metadata = opt_cstring("metadata", metadata.map(Value::to_json).as_deref())?;
        let v = call_json(|out| unsafe {
            // SAFETY: valid handle, C strings (or NULL where allowed) and out-pointer.
            sys::convstate_conversation_create(self.db(), user.as_ptr(), opt_ptr(&title), opt_ptr(&metadata), out)
        })?;
        decoded(Conversation::from_json(&v))
    }

    /// The user's conversation with the host's own key `external_key` (unique per user), created
    /// with `title` and `metadata` if there is none. Returns it and whether this call created
    /// it; callers racing with one new key get one conversation.
    pub fn get_or_create_conversation(
        &self,
        user_id: &str,
        external_key: &str,
        title: Option<&str>,
        metadata: Option<&Value>,
    ) -> Result<(Conversation, bool), Error> {
        let user = cstring("user_id", user_id)?;
        let key = cstring("external_key", external_key)?;
        let title = opt_cstring("title", title)?;
        let metadata = opt_cstring("metadata", metadata.map(Value::to_json).as_deref())?;
        let v = call_json(|out| unsafe {
            // SAFETY: valid handle, C strings (or NULL where allowed) and out-pointer.
            sys::convstate_conversation_get_or_create(
                self.db(),
                user.as_ptr(),
                key.as_ptr(),
                opt_ptr(&title),
                opt_ptr(&metadata),
                out,
            )
        })?;
        let conversation = decoded(Conversation::from_json(v.get("conversation").unwrap_or(&Value::Null)))?;
        Ok((conversation, matches!(v.get("created"), Some(Value::Bool(true)))))
    }

    /// Sums of the usage the conversation's replies reported (`AgentReply::usage`).
    pub fn usage(&self, user_id: &str, conversation_id: &str) -> Result<UsageReport, Error> {
        let user = cstring("user_id", user_id)?;
        let id = cstring("conversation_id", conversation_id)?;
        let v = call_json(|out| unsafe {
            // SAFETY: valid handle, C strings and out-pointer.
            sys::convstate_usage(self.db(), user.as_ptr(), id.as_ptr(), out)
        })?;
        UsageReport::from_json(&v)
    }

    /// The user's usage recorded at or after `since_us` (UTC microseconds), over all conversations.
    pub fn usage_since(&self, user_id: &str, since_us: i64) -> Result<UsageReport, Error> {
        let user = cstring("user_id", user_id)?;
        let v = call_json(|out| unsafe {
            // SAFETY: valid handle, C string and out-pointer.
            sys::convstate_usage_since(self.db(), user.as_ptr(), since_us, out)
        })?;
        UsageReport::from_json(&v)
    }

    /// Forks the conversation: a new one holding copies of messages 1..`at_seq` and of the
    /// summaries covering at most `at_seq`, with `forked_from` set; `title` and `metadata`
    /// default to the source's. Regenerate a reply: fork at its user message and run a turn with
    /// `TurnOptions::regenerate`.
    pub fn fork_conversation(
        &self,
        user_id: &str,
        conversation_id: &str,
        at_seq: i64,
        title: Option<&str>,
        metadata: Option<&Value>,
        external_key: Option<&str>,
    ) -> Result<Conversation, Error> {
        let user = cstring("user_id", user_id)?;
        let id = cstring("conversation_id", conversation_id)?;
        let title = opt_cstring("title", title)?;
        let metadata = opt_cstring("metadata", metadata.map(Value::to_json).as_deref())?;
        let key = opt_cstring("external_key", external_key)?;
        let v = call_json(|out| unsafe {
            // SAFETY: valid handle, C strings (or NULL where allowed) and out-pointer.
            sys::convstate_conversation_fork(
                self.db(),
                user.as_ptr(),
                id.as_ptr(),
                at_seq,
                opt_ptr(&title),
                opt_ptr(&metadata),
                opt_ptr(&key),
                out,
            )
        })?;
        decoded(Conversation::from_json(&v))
    }

    /// The conversations forked from this one, oldest first.
    pub fn forks(&self, user_id: &str, conversation_id: &str) -> Result<Vec<Conversation>, Error> {
        let user = cstring("user_id", user_id)?;
        let id = cstring("conversation_id", conversation_id)?;
        let v = call_json(|out| unsafe {
            // SAFETY: valid handle, C strings and out-pointer.
            sys::convstate_conversation_forks(self.db(), user.as_ptr(), id.as_ptr(), out)
        })?;
        let items = v.as_array().ok_or_else(|| Error::Internal("forks: not a JSON array".into()))?;
        items.iter().map(|c| decoded(Conversation::from_json(c))).collect()
    }

    /// The user's conversation with this external key, or `NotFound`.
    pub fn conversation_by_key(&self, user_id: &str, external_key: &str) -> Result<Conversation, Error> {
        let user = cstring("user_id", user_id)?;
        let key = cstring("external_key", external_key)?;
        let v = call_json(|out| unsafe {
            // SAFETY: valid handle, C strings and out-pointer.
            sys::convstate_conversation_get_by_key(self.db(), user.as_ptr(), key.as_ptr(), out)
        })?;
        decoded(Conversation::from_json(&v))
    }

    /// The conversation, or `NotFound` (also for another user's).
    pub fn get_conversation(&self, user_id: &str, conversation_id: &str) -> Result<Conversation, Error> {
        let user = cstring("user_id", user_id)?;
        let id = cstring("conversation_id", conversation_id)?;
        let v = call_json(|out| unsafe {
            // SAFETY: valid handle, C strings and out-pointer.
            sys::convstate_conversation_get(self.db(), user.as_ptr(), id.as_ptr(), out)
        })?;
        decoded(Conversation::from_json(&v))
    }

    /// A page of the user's conversations, most recently updated first. `cursor`: `None` for the
    /// first page, else a previous page's `next_cursor`. `limit`: 1..100.
    pub fn list_conversations(
        &self,
        user_id: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<ConversationPage, Error> {
        let user = cstring("user_id", user_id)?;
        let cursor = opt_cstring("cursor", cursor)?;
        let limit = c_int::try_from(limit).unwrap_or(c_int::MAX);
        let v = call_json(|out| unsafe {
            // SAFETY: valid handle, C strings (cursor may be NULL) and out-pointer.
            sys::convstate_conversation_list(self.db(), user.as_ptr(), opt_ptr(&cursor), limit, out)
        })?;
        decoded(ConversationPage::from_json(&v))
    }

    pub fn rename_conversation(
        &self,
        user_id: &str,
        conversation_id: &str,
        title: &str,
    ) -> Result<Conversation, Error> {
        let user = cstring("user_id", user_id)?;
        let id = cstring("conversation_id", conversation_id)?;
        let title = cstring("title", title)?;
        let v = call_json(|out| unsafe {
            // SAFETY: valid handle, C strings and out-pointer.
            sys::convstate_conversation_rename(self.db(), user.as_ptr(), id.as_ptr(), title.as_ptr(), out)
        })?;
        decoded(Conversation::from_json(&v))
    }

    /// Replaces the conversation's metadata (a JSON object).
    pub fn set_conversation_metadata(
        &self,
        user_id: &str,
        conversation_id: &str,
        metadata: &Value,
    ) -> Result<Conversation, Error> {
        let user = cstring("user_id", user_id)?;
        let id = cstring("conversation_id", conversation_id)?;
        let metadata = cstring("metadata", &metadata.to_json())?;
        let v = call_json(|out| unsafe {
            // SAFETY: valid handle, C strings and out-pointer.
            sys::convstate_conversation_set_metadata(self.db(), user.as_ptr(), id.as_ptr(), metadata.as_ptr(), out)
        })?;
        decoded(Conversation::from_json(&v))
    }

    /// Deletes the conversation and its messages.
    pub fn delete_conversation(&self, user_id: &str, conversation_id: &str) -> Result<(), Error> {
        let user = cstring("user_id", user_id)?;
        let id = cstring("conversation_id", conversation_id)?;
        // SAFETY: valid handle and C strings.
        check(unsafe { sys::convstate_conversation_delete(self.db(), user.as_ptr(), id.as_ptr()) })
    }

    /// Deletes everything of the user; returns the number of conversations deleted.
    pub fn delete_all_conversations(&self, user_id: &str) -> Result<u64, Error> {
        let user = cstring("user_id", user_id)?;
        let mut count: u64 = 0;
        // SAFETY: valid handle, C string and out-pointer.
        check(unsafe { sys::convstate_conversation_delete_all(self.db(), user.as_ptr(), &mut count) })?;
        Ok(count)
    }

    /// Retention: hard-deletes every conversation (of `user_id`, or of every user when `None`)
    /// not updated since `older_than_us` (UTC microseconds), with its messages, in transactions
    /// of `batch_size` conversations (1..=10000). A conversation that receives a turn meanwhile
    /// is kept; each goes whole or not at all. With `dry_run` nothing is deleted. Returns what
    /// was (or would be) deleted.
    pub fn purge(
        &self,
        older_than_us: i64,
        user_id: Option<&str>,
        batch_size: u64,
        dry_run: bool,
    ) -> Result<PurgeResult, Error> {
        if batch_size == 0 || batch_size > 10000 {
            return Err(Error::invalid("batch_size", "batch_size must be 1..=10000"));
        }
        let user = opt_cstring("user_id", user_id)?;
        let (mut conversations, mut messages) = (0u64, 0u64);
        // SAFETY: valid handle, a C string or null, and out-pointers.
        check(unsafe {
            sys::convstate_conversations_purge(
                self.db(),
                older_than_us,
                opt_ptr(&user),
                batch_size,
                c_int::from(dry_run),
                &mut conversations,
                &mut messages,
            )
        })?;
        Ok(PurgeResult { conversations, messages })
    }

    // ---- Messages ----

    /// Appends one message. With `expected_last_seq`, only if the conversation's last seq is
    /// that (else `Conflict`). A message whose idempotency key is stored already is returned as
    /// stored, not appended. Returns the stored message.
    pub fn append(
        &self,
        user_id: &str,
        conversation_id: &str,
        message: &Message,
        expected_last_seq: Option<i64>,
    ) -> Result<Message, Error> {
        let user = cstring("user_id", user_id)?;
        let id = cstring("conversation_id", conversation_id)?;
        let text = cstring("message", &message.input_json().to_json())?;
        let expected = expected_last_seq;
        let v = call_json(|out| unsafe {
            // SAFETY: valid handle, C strings, optional pointer to a live i64, out-pointer.
            sys::convstate_message_append(
                self.db(),
                user.as_ptr(),
                id.as_ptr(),
                text.as_ptr(),
                expected.as_ref().map_or(ptr::null(), |e| e as *const i64),
                out,
            )
        })?;
        decoded(Message::from_json(&v))
    }

    /// Appends messages atomically, with consecutive seqs. Returns the stored messages.
    pub fn append_batch(
        &self,
        user_id: &str,
        conversation_id: &str,
        messages: &[Message],
        expected_last_seq: Option<i64>,
    ) -> Result<Vec<Message>, Error> {
        let user = cstring("user_id", user_id)?;
        let id = cstring("conversation_id", conversation_id)?;
        let array = Value::Array(messages.iter().map(Message::input_json).collect());
        let text = cstring("messages", &array.to_json())?;
        let expected = expected_last_seq;
        let v = call_json(|out| unsafe {
            // SAFETY: as in append.
            sys::convstate_message_append_batch(
                self.db(),
                user.as_ptr(),
                id.as_ptr(),
                text.as_ptr(),
                expected.as_ref().map_or(ptr::null(), |e| e as *const i64),
                out,
            )
        })?;
        decoded(Message::list_from_json(&v))
    }

    fn load(
        &self,
        user_id: &str,
        conversation_id: &str,
        f: impl FnOnce(*mut sys::convstate_db, *const c_char, *const c_char, *mut *mut c_char) -> sys::convstate_status,
    ) -> Result<Vec<Message>, Error> {
        let user = cstring("user_id", user_id)?;
        let id = cstring("conversation_id", conversation_id)?;
        let v = call_json(|out| f(self.db(), user.as_ptr(), id.as_ptr(), out))?;
        decoded(Message::list_from_json(&v))
    }

    /// Every message, in seq order.
    pub fn load_all(&self, user_id: &str, conversation_id: &str) -> Result<Vec<Message>, Error> {
        // SAFETY (closures below): the helper passes a valid handle, C strings and out-pointer.
        self.load(user_id, conversation_id, |db, u, c, out| unsafe { sys::convstate_message_load_all(db, u, c, out) })
    }

    /// The last `n` messages.
    pub fn load_last(&self, user_id: &str, conversation_id: &str, n: u64) -> Result<Vec<Message>, Error> {
        self.load(user_id, conversation_id, |db, u, c, out| unsafe {
            sys::convstate_message_load_last(db, u, c, n, out)
        })
    }

    /// Up to `limit` (1..10000) messages with seq > `after_seq`.
    pub fn load_after(
        &self,
        user_id: &str,
        conversation_id: &str,
        after_seq: i64,
        limit: u64,
    ) -> Result<Vec<Message>, Error> {
        self.load(user_id, conversation_id, |db, u, c, out| unsafe {
            sys::convstate_message_load_after(db, u, c, after_seq, limit, out)
        })
    }

    /// Up to `limit` (1..10000) messages with seq < `before_seq`, the ones just before it.
    pub fn load_before(
        &self,
        user_id: &str,
        conversation_id: &str,
        before_seq: i64,
        limit: u64,
    ) -> Result<Vec<Message>, Error> {
        self.load(user_id, conversation_id, |db, u, c, out| unsafe {
            sys::convstate_message_load_before(db, u, c, before_seq, limit, out)
        })
    }

    /// The number of messages in the conversation.
    pub fn count(&self, user_id: &str, conversation_id: &str) -> Result<i64, Error> {
        let user = cstring("user_id", user_id)?;
        let id = cstring("conversation_id", conversation_id)?;
        let mut n: i64 = 0;
        // SAFETY: valid handle, C strings and out-pointer.
        check(unsafe { sys::convstate_message_count(self.db(), user.as_ptr(), id.as_ptr(), &mut n) })?;
        Ok(n)
    }

    /// Stores a summary of messages 1..`covers_through_seq` (nothing is deleted; the same
    /// `covers_through_seq` again replaces it). Windows then start from the latest summary. It
    /// never moves the last seq or blocks a turn (PostgreSQL). A boundary inside a tool-call group,
    /// or past the last message, is `InvalidArgument` ("covers_through_seq").
    pub fn add_summary(
        &self,
        user_id: &str,
        conversation_id: &str,
        covers_through_seq: i64,
        content: &str,
        metadata: Option<&Value>,
    ) -> Result<Summary, Error> {
        let user = cstring("user_id", user_id)?;
        let id = cstring("conversation_id", conversation_id)?;
        let content = cstring("content", content)?;
        let metadata = opt_cstring("metadata", metadata.map(Value::to_json).as_deref())?;
        let v = call_json(|out| unsafe {
            // SAFETY: valid handle, C strings (metadata may be NULL) and out-pointer.
            sys::convstate_summary_add(
                self.db(),
                user.as_ptr(),
                id.as_ptr(),
                covers_through_seq,
                content.as_ptr(),
                opt_ptr(&metadata),
                out,
            )
        })?;
        decoded(Summary::from_json(&v))
    }

    /// The conversation's summaries, by `covers_through_seq`.
    pub fn summaries(&self, user_id: &str, conversation_id: &str) -> Result<Vec<Summary>, Error> {
        let user = cstring("user_id", user_id)?;
        let id = cstring("conversation_id", conversation_id)?;
        let v = call_json(|out| unsafe {
            // SAFETY: valid handle, C strings and out-pointer.
            sys::convstate_summary_list(self.db(), user.as_ptr(), id.as_ptr(), out)
        })?;
        decoded(Summary::list_from_json(&v))
    }

    /// Undo: deletes the messages with seq > `after_seq` atomically and moves the last seq back
    /// (seqs stay dense). Returns how many messages this call removed (0 at or past the end).
    /// With `expected_last_seq`, nothing happens unless the last seq equals it (else `Conflict`),
    /// so concurrent undos of one exchange remove it once. An `after_seq` inside a tool-call
    /// group is `InvalidArgument` (field "after_seq").
    pub fn truncate(
        &self,
        user_id: &str,
        conversation_id: &str,
        after_seq: i64,
        expected_last_seq: Option<i64>,
    ) -> Result<i64, Error> {
        let user = cstring("user_id", user_id)?;
        let id = cstring("conversation_id", conversation_id)?;
        let mut removed: i64 = 0;
        check(unsafe {
            // SAFETY: valid handle, C strings, optional pointer to a live i64, out-pointer.
            sys::convstate_message_truncate(
                self.db(),
                user.as_ptr(),
                id.as_ptr(),
                after_seq,
                expected_last_seq.as_ref().map_or(ptr::null(), |e| e as *const i64),
                &mut removed,
            )
        })?;
        Ok(removed)
    }

    /// The window a turn would show the agent now.
    pub fn window(&self, user_id: &str, conversation_id: &str, window: &Window) -> Result<Vec<Message>, Error> {
        let w = window.to_sys();
        self.load(user_id, conversation_id, |db, u, c, out| unsafe { sys::convstate_window_load(db, u, c, &w, out) })
    }

    // ---- The turn ----

    /// Runs one stateless turn: resolves (or creates) the conversation, stores the user
    /// message, loads the window, calls `agent(history, user_id, conversation_id)` on this
    /// thread with no connection held, and stores its output atomically.
    ///
    /// An agent that returns `Err(message)` or panics fails the turn with [`Error::Agent`]; only
    /// the user message stays stored. (A panic is caught at the FFI boundary; the panic hook
    /// still prints it.)
    pub fn turn<F>(&self, user_id: &str, message: &str, options: &TurnOptions, agent: F) -> Result<TurnResult, Error>
    where
        F: FnMut(&[Message], &str, &str) -> Result<AgentReply, String>,
    {
        let user = cstring("user_id", user_id)?;
        let text = cstring("message", message)?;
        let mut agent = agent;
        let context = (&mut agent as *mut F).cast::<c_void>();
        let v = with_raw_options(options, |raw| {
            call_json(|out| unsafe {
                // SAFETY: `raw` points into values that outlive the call; `context` is
                // `&mut agent`, used only by trampoline::<F> on this thread during the call.
                sys::convstate_turn(self.db(), user.as_ptr(), text.as_ptr(), raw, Some(trampoline::<F>), context, out)
            })
        })?;
        decoded(TurnResult::from_json(&v))
    }

    /// The first half of a split turn, for callers that await or stream their model (an async
    /// runtime, another thread): resolves (or creates) the conversation, stores the user message
    /// and loads the window, committed. Run the model on [`PendingTurn::history`], then call
    /// [`Database::complete_turn`] or [`Database::fail_turn`] with [`PendingTurn::token`] — from
    /// any thread, process or instance. A keyed retry of a completed turn returns
    /// [`PendingTurn::completed`] instead (there is nothing to run).
    pub fn begin_turn(&self, user_id: &str, message: &str, options: &TurnOptions) -> Result<PendingTurn, Error> {
        let user = cstring("user_id", user_id)?;
        let text = cstring("message", message)?;
        let v = with_raw_options(options, |raw| {
            // SAFETY: valid handle, C strings, options and out-pointer, all alive for the call.
            call_json(|out| unsafe { sys::convstate_turn_begin(self.db(), user.as_ptr(), text.as_ptr(), raw, out) })
        })?;
        decoded(PendingTurn::from_json(&v))
    }

    /// Stores a begun turn's reply atomically and returns the result. Completing again stores
    /// nothing and returns the stored result (`replayed`). An invalid reply is an
    /// [`Error::InvalidArgument`] naming the field, and the turn stays pending; another user's
    /// token, or a deleted conversation, is [`Error::NotFound`].
    pub fn complete_turn(&self, user_id: &str, token: &str, reply: &AgentReply) -> Result<TurnResult, Error> {
        let user = cstring("user_id", user_id)?;
        let token = cstring("token", token)?;
        let reply = cstring("reply", &reply.to_json().to_json())?;
        let v = call_json(|out| unsafe {
            // SAFETY: valid handle, C strings and out-pointer.
            sys::convstate_turn_complete(self.db(), user.as_ptr(), token.as_ptr(), reply.as_ptr(), out)
        })?;
        decoded(TurnResult::from_json(&v))
    }

    /// Ends a begun turn without a reply: the user message stays, a `reject_concurrent` mark is
    /// cleared and a keyed turn released, so that its retry runs at once. `reason` is checked
    /// but not stored. Failing a completed turn changes nothing.
    pub fn fail_turn(&self, user_id: &str, token: &str, reason: Option<&str>) -> Result<(), Error> {
        let user = cstring("user_id", user_id)?;
        let token = cstring("token", token)?;
        let reason = opt_cstring("reason", reason)?;
        // SAFETY: valid handle and C strings (reason may be NULL).
        check(unsafe { sys::convstate_turn_fail(self.db(), user.as_ptr(), token.as_ptr(), opt_ptr(&reason)) })
    }
}

/// Calls `f` with `options` as the C struct, whose pointers stay valid during the call.
fn with_raw_options<T>(
    options: &TurnOptions,
    f: impl FnOnce(&sys::convstate_turn_options) -> Result<T, Error>,
) -> Result<T, Error> {
    let conversation_id = opt_cstring("conversation_id", options.conversation_id.as_deref())?;
    let key = opt_cstring("idempotency_key", options.idempotency_key.as_deref())?;
    let title = opt_cstring("title", options.title.as_deref())?;
    let conversation_metadata =
        opt_cstring("conversation_metadata", options.conversation_metadata.as_ref().map(Value::to_json).as_deref())?;
    let message_metadata =
        opt_cstring("message_metadata", options.message_metadata.as_ref().map(Value::to_json).as_deref())?;
    let conversation_key = opt_cstring("conversation_key", options.conversation_key.as_deref())?;
    let message_parts = opt_cstring("message_parts", options.message_parts.as_ref().map(Value::to_json).as_deref())?;
    let window = options.window.map(Window::to_sys);

    let mut raw = sys::CONVSTATE_TURN_OPTIONS_INIT;
    raw.conversation_id = opt_ptr(&conversation_id);
    raw.idempotency_key = opt_ptr(&key);
    raw.title = opt_ptr(&title);
    raw.conversation_metadata_json = opt_ptr(&conversation_metadata);
    raw.message_metadata_json = opt_ptr(&message_metadata);
    raw.window = window.as_ref().map_or(ptr::null(), |w| w as *const sys::convstate_window);
    raw.reject_concurrent = c_int::from(options.reject_concurrent);
    // 0 asks for the library's default; the library refuses more than a day.
    let ms = |d: Option<std::time::Duration>| d.map_or(0, |d| i64::try_from(d.as_millis().max(1)).unwrap_or(i64::MAX));
    raw.run_lease_ms = ms(options.run_lease);
    raw.duplicate_wait_ms = ms(options.duplicate_wait);
    raw.flush_user_message = c_int::from(options.flush_user_message);
    raw.conversation_key = opt_ptr(&conversation_key);
    raw.regenerate = c_int::from(options.regenerate);
    raw.message_parts_json = opt_ptr(&message_parts);
    f(&raw)
}

/// The C agent callback: calls the closure behind `context`. Never unwinds: a panic and an
/// `Err` both become convstate_reply_set_error plus a non-OK status.
unsafe extern "C" fn trampoline<F>(
    context: *mut c_void,
    history_json: *const c_char,
    user_id: *const c_char,
    conversation_id: *const c_char,
    reply: *mut sys::convstate_reply,
) -> c_int
where
    F: FnMut(&[Message], &str, &str) -> Result<AgentReply, String>,
{
    let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<(), String> {
        // SAFETY: `context` is the `&mut F` that Database::turn passed, alive for this call.
        let agent = unsafe { &mut *context.cast::<F>() };
        // SAFETY: the three strings are borrowed for the duration of the call (or NULL).
        let (history, user, conversation) =
            unsafe { (borrowed_str(history_json), borrowed_str(user_id), borrowed_str(conversation_id)) };
        let history = json::parse(&history)
            .map_err(|e| format!("convstate (Rust): the history is not valid JSON: {e}"))
            .and_then(|v| {
                Message::list_from_json(&v)
                    .map_err(|e| format!("convstate (Rust): unexpected history JSON: {}", e.message()))
            })?;
        let answer = agent(&history, &user, &conversation)?;
        // SAFETY: `reply` is valid during this callback, on this thread.
        unsafe { fill_reply(reply, &answer) }
    }));
    let message = match outcome {
        Ok(Ok(())) => return sys::CONVSTATE_OK as c_int,
        Ok(Err(message)) => message,
        Err(payload) => {
            let what = if let Some(s) = payload.downcast_ref::<&str>() {
                (*s).to_owned()
            } else if let Some(s) = payload.downcast_ref::<String>() {
                s.clone()
            } else {
                "a non-string panic payload".to_owned()
            };
            // Dropping the payload could itself panic; never let that unwind into C.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            format!("the agent panicked: {what}")
        }
    };
    let message = CString::new(message.replace('\0', "\u{FFFD}")).unwrap_or_default();
    // SAFETY: `reply` is valid during this callback; the message is a valid C string.
    unsafe { sys::convstate_reply_set_error(reply, message.as_ptr()) };
    sys::CONVSTATE_AGENT_ERROR as c_int
}

/// Copies the agent's answer into the C reply. Errors name what the library rejected.
unsafe fn fill_reply(reply: *mut sys::convstate_reply, answer: &AgentReply) -> Result<(), String> {
    let fail = |what: &str, status: sys::convstate_status| -> Result<(), String> {
        if status == sys::CONVSTATE_OK {
            Ok(())
        } else {
            Err(format!("the agent's {what} was rejected: {}", Error::from_last(status)))
        }
    };
    let text = |what: &str, s: String| CString::new(s).map_err(|_| format!("the agent's {what} contains a NUL byte"));

    // SAFETY (every call below): `reply` is valid for this callback, on this thread, and each
    // string is a valid C string that outlives the call.
    let content = text("content", answer.content.clone())?;
    fail("content", unsafe { sys::convstate_reply_set_content(reply, content.as_ptr()) })?;
    if !answer.tool_calls.is_empty() {
        let calls = text("tool_calls", ToolCall::list_to_json(&answer.tool_calls).to_json())?;
        fail("tool_calls", unsafe { sys::convstate_reply_set_tool_calls(reply, calls.as_ptr()) })?;
    }
    for (i, m) in answer.intermediate.iter().enumerate() {
        let what = format!("intermediate[{i}]");
        let m = text(&what, m.input_json().to_json())?;
        fail(&what, unsafe { sys::convstate_reply_add_message(reply, m.as_ptr()) })?;
    }
    if !answer.metadata.is_null() {
        let metadata = text("metadata", answer.metadata.to_json())?;
        fail("metadata", unsafe { sys::convstate_reply_set_metadata(reply, metadata.as_ptr()) })?;
    }
    if let Some(u) = &answer.usage {
        let usage = text("usage", u.to_json().to_json())?;
        fail("usage", unsafe { sys::convstate_reply_set_usage(reply, usage.as_ptr()) })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_display_and_status() {
        let e = Error::InvalidArgument { field: "url".into(), message: "invalid url: bad".into() };
        assert_eq!(e.to_string(), "invalid url: bad");
        assert_eq!(e.status(), sys::CONVSTATE_INVALID_ARGUMENT);
        assert_eq!(Error::NotFound("x".into()).to_string(), "not found: x");
        assert_eq!(Error::Agent("x".into()).message(), "x");
        let boxed: Box<dyn std::error::Error> = Box::new(Error::Conflict("c".into()));
        assert_eq!(boxed.to_string(), "conflict: c");
    }

    #[test]
    fn options_default_matches_init() {
        // (compared through Debug: the struct holds a function pointer, which has no reliable ==)
        assert_eq!(format!("{:?}", Options::default().to_sys()), format!("{:?}", sys::CONVSTATE_DB_OPTIONS_INIT));
        assert_eq!(Window::all().to_sys(), sys::CONVSTATE_WINDOW_INIT);
        let w = Window::last(5).keep_system(false).to_sys();
        assert_eq!((w.kind, w.max_messages, w.keep_system), (sys::CONVSTATE_WINDOW_LAST_MESSAGES, 5, 0));
    }

    #[test]
    fn nul_bytes_are_invalid_arguments() {
        let err = cstring("user_id", "a\0b").unwrap_err();
        assert!(matches!(&err, Error::InvalidArgument { field, .. } if field == "user_id"), "{err:?}");
    }
}
