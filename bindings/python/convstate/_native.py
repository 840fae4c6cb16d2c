"""ctypes declarations for the convstate C API (bindings/c/include/convstate/convstate.h).

Everything here mirrors the header one to one; the Pythonic layer is in ``__init__.py``.

The shared library is located, in this order:

1. the environment variable ``CONVSTATE_LIBRARY`` (the full path of ``libconvstate_c.so``);
   when it is set, nothing else is tried;
2. a copy next to this package (``convstate/libconvstate_c.so``);
3. the system loader (``ctypes.util.find_library("convstate_c")``, then the plain soname, so
   ``LD_LIBRARY_PATH`` is honoured).

It is loaded on first use, not at import, so ``import convstate`` works without it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading
import warnings
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_char_p,
    c_int,
    c_int64,
    c_uint,
    c_uint64,
    c_void_p,
)

# The header this module was written against.
HEADER_VERSION_MAJOR = 0
HEADER_VERSION_MINOR = 1
HEADER_VERSION_PATCH = 0
HEADER_VERSION_NUMBER = HEADER_VERSION_MAJOR * 10000 + HEADER_VERSION_MINOR * 100 + HEADER_VERSION_PATCH

# convstate_status
OK = 0
NOT_FOUND = 1
INVALID_ARGUMENT = 2
CONFLICT = 3
STORAGE_ERROR = 4
OUTCOME_UNKNOWN = 5
AGENT_ERROR = 6
INTERNAL_ERROR = 7

# convstate_window_kind
WINDOW_ALL = 0
WINDOW_LAST_MESSAGES = 1
WINDOW_TOKEN_BUDGET = 2

DB_OPTIONS_VERSION = 3
WINDOW_VERSION = 2
TURN_OPTIONS_VERSION = 6

convstate_status = c_int  # a C enum: int-sized on every ABI we target
convstate_window_kind = c_int


class DbOptions(Structure):
    """struct convstate_db_options"""

    _fields_ = [
        ("version", c_uint),
        ("pool_size", c_uint),
        ("busy_timeout_ms", c_uint),
        ("connect_timeout_ms", c_uint),
        ("migrate_on_open", c_int),
        ("max_retries", c_int),
        ("max_content_bytes", c_uint64),
        # version 2
        ("prepared_statements", c_int),
        ("pool_timeout_ms", c_uint),
        ("statement_timeout_ms", c_uint),
        ("max_user_id_bytes", c_uint64),
        ("max_id_bytes", c_uint64),
        ("max_title_bytes", c_uint64),
        ("max_metadata_bytes", c_uint64),
        ("max_tool_calls", c_uint64),
        ("max_batch", c_uint64),
        # version 3
        ("log", c_void_p),  # a LOG_FN, or None
        ("log_context", c_void_p),
        ("log_level", c_int),
    ]


class Stats(Structure):
    """struct convstate_stats"""

    _fields_ = [("statements", c_uint64), ("transactions", c_uint64), ("retries", c_uint64)]


class Window(Structure):
    """struct convstate_window"""

    _fields_ = [
        ("version", c_uint),
        ("kind", convstate_window_kind),
        ("max_messages", c_uint64),
        ("token_budget", c_int64),
        ("keep_system", c_int),
        ("from_summary", c_int),
        ("summary_role", c_int),
    ]


class TurnOptions(Structure):
    """struct convstate_turn_options"""

    _fields_ = [
        ("version", c_uint),
        ("conversation_id", c_char_p),
        ("idempotency_key", c_char_p),
        ("title", c_char_p),
        ("conversation_metadata_json", c_char_p),
        ("message_metadata_json", c_char_p),
        ("window", POINTER(Window)),
        ("reject_concurrent", c_int),
        ("run_lease_ms", ctypes.c_longlong),
        ("duplicate_wait_ms", ctypes.c_longlong),
        ("flush_user_message", c_int),
        ("conversation_key", c_char_p),
        ("regenerate", c_int),
        ("message_parts_json", c_char_p),
    ]


# typedef convstate_status (*convstate_agent_fn)(void *context, const char *history_json,
#     const char *user_id, const char *conversation_id, convstate_reply *reply);
# The strings arrive as bytes (borrowed for the call; ctypes copies them); reply as an int address.
# typedef void (*convstate_log_fn)(void *context, int level, const char *message);
LOG_FN = CFUNCTYPE(None, c_void_p, c_int, c_char_p)

AGENT_FN = CFUNCTYPE(convstate_status, c_void_p, c_char_p, c_char_p, c_char_p, c_void_p)

_db_p = c_void_p      # convstate_db *
_reply_p = c_void_p   # convstate_reply *
_out_str = POINTER(c_void_p)  # char ** (caller frees with convstate_free; c_void_p keeps the pointer)

# name: (restype, argtypes) — every function of convstate.h.
_SIGNATURES = {
    # Version
    "convstate_version_number": (c_int, []),
    "convstate_version_string": (c_char_p, []),
    # Errors
    "convstate_status_name": (c_char_p, [convstate_status]),
    "convstate_last_error": (c_char_p, []),
    "convstate_last_error_field": (c_char_p, []),
    "convstate_free": (None, [c_void_p]),
    # Database
    "convstate_db_open": (convstate_status, [c_char_p, POINTER(DbOptions), POINTER(_db_p)]),
    "convstate_db_close": (None, [_db_p]),
    "convstate_db_migrate": (convstate_status, [_db_p]),
    "convstate_db_schema_version": (convstate_status, [_db_p, POINTER(c_int)]),
    "convstate_db_stats": (convstate_status, [_db_p, POINTER(Stats)]),
    "convstate_db_stats_json": (convstate_status, [_db_p, _out_str]),
    # Conversations
    "convstate_conversation_create": (convstate_status, [_db_p, c_char_p, c_char_p, c_char_p, _out_str]),
    "convstate_conversation_get": (convstate_status, [_db_p, c_char_p, c_char_p, _out_str]),
    "convstate_conversation_list": (convstate_status, [_db_p, c_char_p, c_char_p, c_int, _out_str]),
    "convstate_conversation_rename": (convstate_status, [_db_p, c_char_p, c_char_p, c_char_p, _out_str]),
    "convstate_conversation_set_metadata": (convstate_status, [_db_p, c_char_p, c_char_p, c_char_p, _out_str]),
    "convstate_conversation_delete": (convstate_status, [_db_p, c_char_p, c_char_p]),
    "convstate_conversation_delete_all": (convstate_status, [_db_p, c_char_p, POINTER(c_uint64)]),
    "convstate_conversations_purge": (
        convstate_status,
        [_db_p, c_int64, c_char_p, c_uint64, c_int, POINTER(c_uint64), POINTER(c_uint64)],
    ),
    "convstate_conversation_get_or_create": (
        convstate_status, [_db_p, c_char_p, c_char_p, c_char_p, c_char_p, _out_str]),
    "convstate_conversation_get_by_key": (convstate_status, [_db_p, c_char_p, c_char_p, _out_str]),
    "convstate_conversation_fork": (
        convstate_status, [_db_p, c_char_p, c_char_p, c_int64, c_char_p, c_char_p, c_char_p, _out_str]),
    "convstate_conversation_forks": (convstate_status, [_db_p, c_char_p, c_char_p, _out_str]),
    # Usage and summaries
    "convstate_usage": (convstate_status, [_db_p, c_char_p, c_char_p, _out_str]),
    "convstate_usage_since": (convstate_status, [_db_p, c_char_p, c_int64, _out_str]),
    "convstate_summary_add": (
        convstate_status, [_db_p, c_char_p, c_char_p, c_int64, c_char_p, c_char_p, _out_str]),
    "convstate_summary_list": (convstate_status, [_db_p, c_char_p, c_char_p, _out_str]),
    # Messages
    "convstate_message_append": (
        convstate_status, [_db_p, c_char_p, c_char_p, c_char_p, POINTER(c_int64), _out_str]),
    "convstate_message_append_batch": (
        convstate_status, [_db_p, c_char_p, c_char_p, c_char_p, POINTER(c_int64), _out_str]),
    "convstate_message_load_all": (convstate_status, [_db_p, c_char_p, c_char_p, _out_str]),
    "convstate_message_load_last": (convstate_status, [_db_p, c_char_p, c_char_p, c_uint64, _out_str]),
    "convstate_message_load_after": (
        convstate_status, [_db_p, c_char_p, c_char_p, c_int64, c_uint64, _out_str]),
    "convstate_message_load_before": (
        convstate_status, [_db_p, c_char_p, c_char_p, c_int64, c_uint64, _out_str]),
    "convstate_message_count": (convstate_status, [_db_p, c_char_p, c_char_p, POINTER(c_int64)]),
    "convstate_message_truncate": (
        convstate_status, [_db_p, c_char_p, c_char_p, c_int64, POINTER(c_int64), POINTER(c_int64)]),
    # Windows
    "convstate_window_load": (convstate_status, [_db_p, c_char_p, c_char_p, POINTER(Window), _out_str]),
    # The turn
    "convstate_reply_set_content": (convstate_status, [_reply_p, c_char_p]),
    "convstate_reply_set_tool_calls": (convstate_status, [_reply_p, c_char_p]),
    "convstate_reply_add_message": (convstate_status, [_reply_p, c_char_p]),
    "convstate_reply_set_metadata": (convstate_status, [_reply_p, c_char_p]),
    "convstate_reply_set_usage": (convstate_status, [_reply_p, c_char_p]),
    "convstate_reply_set_error": (convstate_status, [_reply_p, c_char_p]),
    "convstate_turn": (
        convstate_status, [_db_p, c_char_p, c_char_p, POINTER(TurnOptions), AGENT_FN, c_void_p, _out_str]),
    "convstate_turn_begin": (convstate_status, [_db_p, c_char_p, c_char_p, POINTER(TurnOptions), _out_str]),
    "convstate_turn_complete": (convstate_status, [_db_p, c_char_p, c_char_p, c_char_p, _out_str]),
    "convstate_turn_fail": (convstate_status, [_db_p, c_char_p, c_char_p, c_char_p]),
}


class LibraryError(OSError):
    """The native library could not be found or loaded, or does not match this package."""


if sys.platform == "darwin":
    _LIB_FILE = "libconvstate_c.dylib"
elif sys.platform == "win32":
    _LIB_FILE = "convstate_c.dll"
else:
    _LIB_FILE = "libconvstate_c.so"

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None


def _open() -> ctypes.CDLL:
    tried: list[str] = []
    env = os.environ.get("CONVSTATE_LIBRARY")
    if env:
        try:
            return ctypes.CDLL(env)
        except OSError as e:
            raise LibraryError(f"convstate: cannot load CONVSTATE_LIBRARY={env!r}: {e}") from e

    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), _LIB_FILE)
    if os.path.exists(here):
        try:
            return ctypes.CDLL(here)
        except OSError as e:
            raise LibraryError(f"convstate: cannot load {here}: {e}") from e
    tried.append(here)

    candidates = []
    found = ctypes.util.find_library("convstate_c")
    if found:
        candidates.append(found)
    candidates.append(_LIB_FILE)
    errors = []
    for name in candidates:
        try:
            return ctypes.CDLL(name)
        except OSError as e:
            tried.append(name)
            errors.append(str(e))
    raise LibraryError(
        "convstate: the native library libconvstate_c was not found. Set CONVSTATE_LIBRARY to the "
        "full path of libconvstate_c.so (e.g. build/<dir>/lib/libconvstate_c.so), copy it next to "
        "the convstate package, or install it where the system loader finds it. Tried: "
        + ", ".join(tried)
        + (" (" + "; ".join(errors) + ")" if errors else "")
    )


def _declare(lib: ctypes.CDLL) -> None:
    missing = []
    for name, (restype, argtypes) in _SIGNATURES.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            missing.append(name)
            continue
        fn.restype = restype
        fn.argtypes = argtypes
    if missing:
        raise LibraryError(f"convstate: {lib._name} lacks {', '.join(missing)}")


def _check_version(lib: ctypes.CDLL) -> None:
    number = lib.convstate_version_number()
    major, minor = number // 10000, number // 100 % 100
    text = lib.convstate_version_string().decode("utf-8", "replace")
    if major != HEADER_VERSION_MAJOR:
        raise LibraryError(
            f"convstate: {lib._name} is version {text} ({number}); this package needs "
            f"{HEADER_VERSION_MAJOR}.x (header {HEADER_VERSION_NUMBER})"
        )
    if number < HEADER_VERSION_NUMBER:
        warnings.warn(
            f"convstate: {lib._name} is version {text}, older than the header this package was "
            f"written for ({HEADER_VERSION_MAJOR}.{HEADER_VERSION_MINOR}.{HEADER_VERSION_PATCH})",
            RuntimeWarning,
            stacklevel=3,
        )


def lib() -> ctypes.CDLL:
    """The loaded, declared and version-checked library (loaded once per process)."""
    global _lib
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is None:
            loaded = _open()
            _declare(loaded)
            _check_version(loaded)
            _lib = loaded
    return _lib


def take_string(ptr: c_void_p) -> str | None:
    """Copies a `char*` result into a str and frees it with convstate_free."""
    if not ptr.value:
        return None
    try:
        return ctypes.string_at(ptr.value).decode("utf-8")
    finally:
        lib().convstate_free(ptr.value)
        ptr.value = None
