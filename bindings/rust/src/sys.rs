//! Raw declarations of the C API in `bindings/c/include/convstate/convstate.h`, one to one.
//!
//! Everything here is `unsafe` to use; the safe API is in the crate root. Names follow the C
//! header. C enums are declared as `c_uint` type aliases with constants (what GCC and Clang use
//! for enums without negative values), never as Rust enums: a value the library returns that a
//! Rust enum did not list would be undefined behaviour.

#![allow(non_camel_case_types)]

use std::os::raw::{c_char, c_int, c_longlong, c_uint, c_void};
use std::marker::{PhantomData, PhantomPinned};

// ---- Version ---------------------------------------------------------------------------------

pub const CONVSTATE_VERSION_MAJOR: c_int = 0;
pub const CONVSTATE_VERSION_MINOR: c_int = 1;
pub const CONVSTATE_VERSION_PATCH: c_int = 0;
pub const CONVSTATE_VERSION_NUMBER: c_int =
    CONVSTATE_VERSION_MAJOR * 10000 + CONVSTATE_VERSION_MINOR * 100 + CONVSTATE_VERSION_PATCH;

// ---- Status ----------------------------------------------------------------------------------

/** `enum convstate_status`. */
pub type convstate_status = c_uint;
pub const CONVSTATE_OK: convstate_status = 0;
pub const CONVSTATE_NOT_FOUND: convstate_status = 1;
pub const CONVSTATE_INVALID_ARGUMENT: convstate_status = 2;
pub const CONVSTATE_CONFLICT: convstate_status = 3;
pub const CONVSTATE_STORAGE_ERROR: convstate_status = 4;
pub const CONVSTATE_OUTCOME_UNKNOWN: convstate_status = 5;
pub const CONVSTATE_AGENT_ERROR: convstate_status = 6;
pub const CONVSTATE_INTERNAL_ERROR: convstate_status = 7;

// ---- Opaque handles --------------------------------------------------------------------------

/** `struct convstate_db` (opaque). */
#[repr(C)]
pub struct convstate_db {
    _data: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/** `struct convstate_reply` (opaque; valid only inside the agent callback). */
#[repr(C)]
pub struct convstate_reply {
    _data: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

// ---- Database options ------------------------------------------------------------------------

pub const CONVSTATE_DB_OPTIONS_VERSION: c_uint = 3;

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct convstate_db_options {
    pub version: c_uint,
    pub pool_size: c_uint,
    pub busy_timeout_ms: c_uint,
    pub connect_timeout_ms: c_uint,
    pub migrate_on_open: c_int,
    pub max_retries: c_int,
    pub max_content_bytes: u64,
    // version 2
    pub prepared_statements: c_int,
    pub pool_timeout_ms: c_uint,
    pub statement_timeout_ms: c_uint,
    pub max_user_id_bytes: u64,
    pub max_id_bytes: u64,
    pub max_title_bytes: u64,
    pub max_metadata_bytes: u64,
    pub max_tool_calls: u64,
    pub max_batch: u64,
    // version 3
    pub log: Option<convstate_log_fn>,
    pub log_context: *mut c_void,
    pub log_level: c_int,
}

/** `convstate_log_fn`. */
pub type convstate_log_fn = unsafe extern "C" fn(context: *mut c_void, level: c_int, message: *const c_char);
pub const CONVSTATE_LOG_DEBUG: c_int = 0;
pub const CONVSTATE_LOG_INFO: c_int = 1;
pub const CONVSTATE_LOG_WARNING: c_int = 2;
pub const CONVSTATE_LOG_ERROR: c_int = 3;

/** `struct convstate_stats`. */
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct convstate_stats {
    pub statements: u64,
    pub transactions: u64,
    pub retries: u64,
}

/** `CONVSTATE_DB_OPTIONS_INIT`. */
pub const CONVSTATE_DB_OPTIONS_INIT: convstate_db_options = convstate_db_options {
    version: CONVSTATE_DB_OPTIONS_VERSION,
    pool_size: 4,
    busy_timeout_ms: 10000,
    connect_timeout_ms: 10000,
    migrate_on_open: 1,
    max_retries: 8,
    max_content_bytes: 0,
    prepared_statements: 1,
    pool_timeout_ms: 30000,
    statement_timeout_ms: 30000,
    max_user_id_bytes: 0,
    max_id_bytes: 0,
    max_title_bytes: 0,
    max_metadata_bytes: 0,
    max_tool_calls: 0,
    max_batch: 0,
    log: None,
    log_context: std::ptr::null_mut(),
    log_level: CONVSTATE_LOG_INFO,
};

// ---- History windows -------------------------------------------------------------------------

/** `enum convstate_window_kind`. */
pub type convstate_window_kind = c_int; // the struct field is an int
pub const CONVSTATE_WINDOW_ALL: convstate_window_kind = 0;
pub const CONVSTATE_WINDOW_LAST_MESSAGES: convstate_window_kind = 1;
pub const CONVSTATE_WINDOW_TOKEN_BUDGET: convstate_window_kind = 2;

/** `enum convstate_role` (convstate_window::summary_role). */
pub const CONVSTATE_ROLE_SYSTEM: c_int = 0;
pub const CONVSTATE_ROLE_USER: c_int = 1;
pub const CONVSTATE_ROLE_ASSISTANT: c_int = 2;
pub const CONVSTATE_ROLE_TOOL: c_int = 3;
pub const CONVSTATE_ROLE_DEVELOPER: c_int = 4;

pub const CONVSTATE_WINDOW_VERSION: c_uint = 2;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct convstate_window {
    pub version: c_uint,
    pub kind: convstate_window_kind,
    pub max_messages: u64,
    pub token_budget: i64,
    pub keep_system: c_int,
    pub from_summary: c_int,
    pub summary_role: c_int,
}

/** `CONVSTATE_WINDOW_INIT`. */
pub const CONVSTATE_WINDOW_INIT: convstate_window = convstate_window {
    version: CONVSTATE_WINDOW_VERSION,
    kind: CONVSTATE_WINDOW_ALL,
    max_messages: 0,
    token_budget: 0,
    keep_system: 1,
    from_summary: 1,
    summary_role: CONVSTATE_ROLE_SYSTEM,
};

// ---- The turn --------------------------------------------------------------------------------

/** `convstate_agent_fn`; `None` is the C NULL function pointer. */
pub type convstate_agent_fn = Option<
    unsafe extern "C" fn(
        context: *mut c_void,
        history_json: *const c_char,
        user_id: *const c_char,
        conversation_id: *const c_char,
        reply: *mut convstate_reply,
    ) -> c_int, // a convstate_status value
>;

pub const CONVSTATE_TURN_OPTIONS_VERSION: c_uint = 6;

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct convstate_turn_options {
    pub version: c_uint,
    pub conversation_id: *const c_char,
    pub idempotency_key: *const c_char,
    pub title: *const c_char,
    pub conversation_metadata_json: *const c_char,
    pub message_metadata_json: *const c_char,
    pub window: *const convstate_window,
    pub reject_concurrent: c_int,
    pub run_lease_ms: c_longlong,
    pub duplicate_wait_ms: c_longlong,
    pub flush_user_message: c_int,
    pub conversation_key: *const c_char,
    pub regenerate: c_int,
    pub message_parts_json: *const c_char,
}

/** `CONVSTATE_TURN_OPTIONS_INIT`. */
pub const CONVSTATE_TURN_OPTIONS_INIT: convstate_turn_options = convstate_turn_options {
    version: CONVSTATE_TURN_OPTIONS_VERSION,
    conversation_id: std::ptr::null(),
    idempotency_key: std::ptr::null(),
    title: std::ptr::null(),
    conversation_metadata_json: std::ptr::null(),
    message_metadata_json: std::ptr::null(),
    window: std::ptr::null(),
    reject_concurrent: 0,
    run_lease_ms: 0,
    duplicate_wait_ms: 0,
    flush_user_message: 0,
    conversation_key: std::ptr::null(),
    regenerate: 0,
    message_parts_json: std::ptr::null(),
};

// ---- Functions -------------------------------------------------------------------------------

extern "C" {
    // Version
    pub fn convstate_version_number() -> c_int;
    pub fn convstate_version_string() -> *const c_char;

    // Errors
    pub fn convstate_status_name(status: c_int) -> *const c_char;
    pub fn convstate_last_error() -> *const c_char;
    pub fn convstate_last_error_field() -> *const c_char;
    pub fn convstate_free(p: *mut c_void);

    // Database
    pub fn convstate_db_open(
        url: *const c_char,
        options: *const convstate_db_options,
        out: *mut *mut convstate_db,
    ) -> convstate_status;
    pub fn convstate_db_close(db: *mut convstate_db);
    pub fn convstate_db_migrate(db: *mut convstate_db) -> convstate_status;
    pub fn convstate_db_schema_version(db: *mut convstate_db, out: *mut c_int) -> convstate_status;
    pub fn convstate_db_stats(db: *mut convstate_db, out: *mut convstate_stats) -> convstate_status;

    // Conversations
    pub fn convstate_conversation_create(
        db: *mut convstate_db,
        user_id: *const c_char,
        title: *const c_char,
        metadata_json: *const c_char,
        out_json: *mut *mut c_char,
    ) -> convstate_status;
    pub fn convstate_conversation_get(
        db: *mut convstate_db,
        user_id: *const c_char,
        conversation_id: *const c_char,
        out_json: *mut *mut c_char,
    ) -> convstate_status;
    pub fn convstate_conversation_list(
        db: *mut convstate_db,
        user_id: *const c_char,
        cursor: *const c_char,
        limit: c_int,
        out_json: *mut *mut c_char,
    ) -> convstate_status;
    pub fn convstate_conversation_rename(
        db: *mut convstate_db,
        user_id: *const c_char,
        conversation_id: *const c_char,
        title: *const c_char,
        out_json: *mut *mut c_char,
    ) -> convstate_status;
    pub fn convstate_conversation_set_metadata(
        db: *mut convstate_db,
        user_id: *const c_char,
        conversation_id: *const c_char,
        metadata_json: *const c_char,
        out_json: *mut *mut c_char,
    ) -> convstate_status;
    pub fn convstate_conversation_delete(
        db: *mut convstate_db,
        user_id: *const c_char,
        conversation_id: *const c_char,
    ) -> convstate_status;
    pub fn convstate_conversation_delete_all(
        db: *mut convstate_db,
        user_id: *const c_char,
        out_count: *mut u64,
    ) -> convstate_status;
    pub fn convstate_db_stats_json(db: *mut convstate_db, out_json: *mut *mut c_char) -> convstate_status;
    pub fn convstate_conversations_purge(
        db: *mut convstate_db,
        older_than_us: i64,
        user_id: *const c_char,
        batch_size: u64,
        dry_run: c_int,
        out_conversations: *mut u64,
        out_messages: *mut u64,
    ) -> convstate_status;

    // Messages
    pub fn convstate_message_append(
        db: *mut convstate_db,
        user_id: *const c_char,
        conversation_id: *const c_char,
        message_json: *const c_char,
        expected_last_seq: *const i64,
        out_json: *mut *mut c_char,
    ) -> convstate_status;
    pub fn convstate_message_append_batch(
        db: *mut convstate_db,
        user_id: *const c_char,
        conversation_id: *const c_char,
        messages_json: *const c_char,
        expected_last_seq: *const i64,
        out_json: *mut *mut c_char,
    ) -> convstate_status;
    pub fn convstate_message_load_all(
        db: *mut convstate_db,
        user_id: *const c_char,
        conversation_id: *const c_char,
        out_json: *mut *mut c_char,
    ) -> convstate_status;
    pub fn convstate_message_load_last(
        db: *mut convstate_db,
        user_id: *const c_char,
        conversation_id: *const c_char,
        n: u64,
        out_json: *mut *mut c_char,
    ) -> convstate_status;
    pub fn convstate_message_load_after(
        db: *mut convstate_db,
        user_id: *const c_char,
        conversation_id: *const c_char,
        after_seq: i64,
        limit: u64,
        out_json: *mut *mut c_char,
    ) -> convstate_status;
    pub fn convstate_message_load_before(
        db: *mut convstate_db,
        user_id: *const c_char,
        conversation_id: *const c_char,
        before_seq: i64,
        limit: u64,
        out_json: *mut *mut c_char,
    ) -> convstate_status;
    pub fn convstate_conversation_get_or_create(
        db: *mut convstate_db,
        user_id: *const c_char,
        external_key: *const c_char,
        title: *const c_char,
        metadata_json: *const c_char,
        out_json: *mut *mut c_char,
    ) -> convstate_status;
    pub fn convstate_conversation_fork(
        db: *mut convstate_db,
        user_id: *const c_char,
        conversation_id: *const c_char,
        at_seq: i64,
        title: *const c_char,
        metadata_json: *const c_char,
        external_key: *const c_char,
        out_json: *mut *mut c_char,
    ) -> convstate_status;
    pub fn convstate_conversation_forks(
        db: *mut convstate_db,
        user_id: *const c_char,
        conversation_id: *const c_char,
        out_json: *mut *mut c_char,
    ) -> convstate_status;
    pub fn convstate_conversation_get_by_key(
        db: *mut convstate_db,
        user_id: *const c_char,
        external_key: *const c_char,
        out_json: *mut *mut c_char,
    ) -> convstate_status;
    pub fn convstate_usage(
        db: *mut convstate_db,
        user_id: *const c_char,
        conversation_id: *const c_char,
        out_json: *mut *mut c_char,
    ) -> convstate_status;
    pub fn convstate_usage_since(
        db: *mut convstate_db,
        user_id: *const c_char,
        since_us: i64,
        out_json: *mut *mut c_char,
    ) -> convstate_status;
    pub fn convstate_summary_add(
        db: *mut convstate_db,
        user_id: *const c_char,
        conversation_id: *const c_char,
        covers_through_seq: i64,
        content: *const c_char,
        metadata_json: *const c_char,
        out_json: *mut *mut c_char,
    ) -> convstate_status;
    pub fn convstate_summary_list(
        db: *mut convstate_db,
        user_id: *const c_char,
        conversation_id: *const c_char,
        out_json: *mut *mut c_char,
    ) -> convstate_status;
    pub fn convstate_message_truncate(
        db: *mut convstate_db,
        user_id: *const c_char,
        conversation_id: *const c_char,
        after_seq: i64,
        expected_last_seq: *const i64,
        out_removed: *mut i64,
    ) -> convstate_status;
    pub fn convstate_message_count(
        db: *mut convstate_db,
        user_id: *const c_char,
        conversation_id: *const c_char,
        out: *mut i64,
    ) -> convstate_status;

    // History windows
    pub fn convstate_window_load(
        db: *mut convstate_db,
        user_id: *const c_char,
        conversation_id: *const c_char,
        window: *const convstate_window,
        out_json: *mut *mut c_char,
    ) -> convstate_status;

    // The reply under construction (inside the agent callback only)
    pub fn convstate_reply_set_content(reply: *mut convstate_reply, content: *const c_char) -> convstate_status;
    pub fn convstate_reply_set_tool_calls(
        reply: *mut convstate_reply,
        tool_calls_json: *const c_char,
    ) -> convstate_status;
    pub fn convstate_reply_add_message(reply: *mut convstate_reply, message_json: *const c_char) -> convstate_status;
    pub fn convstate_reply_set_metadata(reply: *mut convstate_reply, metadata_json: *const c_char) -> convstate_status;
    pub fn convstate_reply_set_usage(reply: *mut convstate_reply, usage_json: *const c_char) -> convstate_status;
    pub fn convstate_reply_set_error(reply: *mut convstate_reply, message: *const c_char) -> convstate_status;

    // The turn
    pub fn convstate_turn(
        db: *mut convstate_db,
        user_id: *const c_char,
        message: *const c_char,
        options: *const convstate_turn_options,
        agent: convstate_agent_fn,
        context: *mut c_void,
        out_json: *mut *mut c_char,
    ) -> convstate_status;
    pub fn convstate_turn_begin(
        db: *mut convstate_db,
        user_id: *const c_char,
        message: *const c_char,
        options: *const convstate_turn_options,
        out_json: *mut *mut c_char,
    ) -> convstate_status;
    pub fn convstate_turn_complete(
        db: *mut convstate_db,
        user_id: *const c_char,
        token: *const c_char,
        reply_json: *const c_char,
        out_json: *mut *mut c_char,
    ) -> convstate_status;
    pub fn convstate_turn_fail(
        db: *mut convstate_db,
        user_id: *const c_char,
        token: *const c_char,
        reason: *const c_char,
    ) -> convstate_status;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{align_of, size_of};

    // The layouts the C compiler gives these structs on LP64 targets.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn struct_layouts() {
        assert_eq!(size_of::<convstate_db_options>(), 120);
        assert_eq!(size_of::<convstate_stats>(), 24);
        assert_eq!(align_of::<convstate_db_options>(), 8);
        assert_eq!(size_of::<convstate_window>(), 40);
        assert_eq!(size_of::<convstate_turn_options>(), 112);
        assert_eq!(CONVSTATE_VERSION_NUMBER, 100);
    }
}
