//! Integration tests against the real library, on SQLite (a temp file per test) and on
//! PostgreSQL (CONVSTATE_TEST_PG_URL; skipped when unset unless CONVSTATE_REQUIRE_PG=1) and on
//! MariaDB (CONVSTATE_TEST_MARIADB_URL, CONVSTATE_REQUIRE_MARIADB).

mod common;

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use common::{unique, TestDb};
use convstate::{AgentReply, Database, Error, Message, Options, Role, ToolCall, TurnOptions, Value, Window};

backend_tests!(
    conversation_crud,
    conversation_pagination,
    isolation_between_users,
    append_batch_idempotency_and_conflict,
    invalid_messages_write_nothing,
    loads_and_count,
    unicode_round_trip,
    turn_creates_and_continues,
    turn_stores_intermediate_tool_messages_in_order,
    agent_error_keeps_only_the_user_message,
    panicking_agent_becomes_agent_error,
    idempotent_turn_retry_does_not_call_the_agent,
    windows,
    turn_uses_window,
    shared_database_four_threads,
    reject_concurrent_turns,
    keyed_duplicate_waits_for_the_running_turn,
    schema_and_migrate,
    split_turn_across_threads,
    split_turn_errors_and_fail,
    conversation_keys,
    developer_role,
    summaries,
    fork_and_regenerate,
    usage,
    content_parts,
    purge,
    logger_and_stats,
);

fn user() -> String {
    unique("rust-user")
}

fn assert_invalid<T: std::fmt::Debug>(r: Result<T, Error>, expected_field: &str) {
    match r {
        Err(Error::InvalidArgument { field, message }) => {
            assert_eq!(field, expected_field, "message: {message}");
            assert!(!message.is_empty());
        }
        other => panic!("expected InvalidArgument({expected_field}), got {other:?}"),
    }
}

fn assert_not_found<T: std::fmt::Debug>(r: Result<T, Error>) {
    assert!(matches!(r, Err(Error::NotFound(_))), "expected NotFound, got {r:?}");
}

/// An agent that answers "echo: <last message>".
fn echo(history: &[Message], _user: &str, _conversation: &str) -> Result<AgentReply, String> {
    Ok(AgentReply::text(format!("echo: {}", history.last().map_or("", |m| m.content.as_str()))))
}

// ---- Backend-independent -----------------------------------------------------------------

#[test]
fn bad_urls_are_invalid_arguments_naming_url() {
    for url in ["oracle://localhost/db", "not a url", "", "sqlite3://a\0b"] {
        assert_invalid(Database::open(url), "url");
    }
}

#[test]
fn bad_options_are_invalid_arguments() {
    let (url, files) = common::sqlite_url();
    assert_invalid(Database::open_with(&url, &Options { pool_size: 0, ..Options::default() }), "pool_size");
    assert_invalid(Database::open_with(&url, &Options { max_retries: -1, ..Options::default() }), "max_retries");
    assert_invalid(
        Database::open_with(&url, &Options { statement_timeout_ms: 0, ..Options::default() }),
        "statement_timeout",
    );
    // The limits and prepared_statements reach the library; stats count what was done.
    let options = Options { max_title_bytes: 4, prepared_statements: false, ..Options::default() };
    let db = Database::open_with(&url, &options).unwrap();
    assert_invalid(db.create_conversation(&user(), Some("five!"), None), "title");
    let before = db.stats().unwrap();
    db.create_conversation(&user(), Some("four"), None).unwrap();
    let after = db.stats().unwrap();
    assert!(after.statements > before.statements);
    assert!(after.transactions > before.transactions);
    assert_eq!(after.retries, 0);
    drop(db);
    for f in files {
        let _ = std::fs::remove_file(f);
    }
}

#[test]
fn unreachable_postgres_is_a_storage_error_without_the_password() {
    let options = Options { connect_timeout_ms: 2000, max_retries: 0, ..Options::default() };
    let err = Database::open_with("postgresql://someone:s3cretpw@127.0.0.1:1/nothing", &options).unwrap_err();
    assert!(matches!(err, Error::Storage(_)), "{err:?}");
    assert!(!err.to_string().contains("s3cretpw"), "{err}");
}

#[test]
fn version_matches_the_header() {
    assert_eq!(convstate::version_number() / 10000, convstate::sys::CONVSTATE_VERSION_MAJOR);
    assert_eq!(convstate::version_number(), convstate::sys::CONVSTATE_VERSION_NUMBER);
    assert_eq!(convstate::version(), "0.1.0");
    assert_eq!(convstate::status_name(convstate::sys::CONVSTATE_NOT_FOUND), "CONVSTATE_NOT_FOUND");
}

#[test]
fn database_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Database>();
}

// ---- Conversations -----------------------------------------------------------------------

fn conversation_crud(db: TestDb) {
    let u = user();
    let meta = Value::object().with("topic", "tests").with("n", 3);
    let c = db.create_conversation(&u, Some("First"), Some(&meta)).unwrap();
    assert_eq!((c.user_id.as_str(), c.title.as_str(), c.last_seq), (u.as_str(), "First", 0));
    assert_eq!(c.metadata, meta);
    assert_eq!(c.id.len(), 36, "UUID: {}", c.id);
    assert!(c.created_at_us > 0 && c.updated_at_us >= c.created_at_us);

    let plain = db.create_conversation(&u, None, None).unwrap();
    assert_eq!(plain.title, "");
    assert_eq!(plain.metadata, Value::object());

    assert_eq!(db.get_conversation(&u, &c.id).unwrap(), c);

    let renamed = db.rename_conversation(&u, &c.id, "Second").unwrap();
    assert_eq!(renamed.title, "Second");
    assert_eq!(renamed.id, c.id);
    let meta2 = Value::object().with("nested", Value::object().with("list", Value::Array(vec![1.into(), 2.5.into()])));
    let updated = db.set_conversation_metadata(&u, &c.id, &meta2).unwrap();
    assert_eq!(updated.metadata, meta2);
    assert_eq!(db.get_conversation(&u, &c.id).unwrap().metadata, meta2);
    assert_invalid(db.set_conversation_metadata(&u, &c.id, &Value::Array(vec![])), "metadata");
    assert_invalid(db.create_conversation(&u, None, Some(&Value::from("x"))), "metadata");
    assert_invalid(db.create_conversation("", None, None), "user_id");
    assert_invalid(db.create_conversation("nul\0user", None, None), "user_id");

    db.delete_conversation(&u, &c.id).unwrap();
    assert_not_found(db.get_conversation(&u, &c.id));
    assert_not_found(db.delete_conversation(&u, &c.id));
    assert_not_found(db.rename_conversation(&u, &c.id, "x"));

    db.create_conversation(&u, Some("third"), None).unwrap();
    assert_eq!(db.delete_all_conversations(&u).unwrap(), 2);
    assert_eq!(db.delete_all_conversations(&u).unwrap(), 0);
    assert_not_found(db.get_conversation(&u, &plain.id));
    assert!(db.list_conversations(&u, None, 10).unwrap().items.is_empty());
}

fn conversation_pagination(db: TestDb) {
    let u = user();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(db.create_conversation(&u, Some(&format!("c{i}")), None).unwrap().id);
    }
    // Touch c1 so it becomes the most recently updated.
    db.append(&u, &ids[1], &Message::user("bump"), None).unwrap();

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = db.list_conversations(&u, cursor.as_deref(), 2).unwrap();
        pages += 1;
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|c| c.id.clone()));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert_eq!(seen[0], ids[1], "most recently updated first");
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 5, "no duplicates across pages");
    let all = db.list_conversations(&u, None, 100).unwrap();
    assert_eq!(all.items.len(), 5);
    assert!(all.next_cursor.is_none());
    assert!(all.items.windows(2).all(|w| w[0].updated_at_us >= w[1].updated_at_us));

    assert_invalid(db.list_conversations(&u, None, 0), "limit");
    assert_invalid(db.list_conversations(&u, None, 101), "limit");
    assert_invalid(db.list_conversations(&u, None, u32::MAX), "limit");
    assert_invalid(db.list_conversations(&u, Some("garbage"), 2), "cursor");
}

fn isolation_between_users(db: TestDb) {
    let (alice, mallory) = (user(), user());
    let c = db.create_conversation(&alice, Some("private"), None).unwrap();
    db.append(&alice, &c.id, &Message::user("secret"), None).unwrap();

    assert_not_found(db.get_conversation(&mallory, &c.id));
    assert_not_found(db.rename_conversation(&mallory, &c.id, "mine"));
    assert_not_found(db.set_conversation_metadata(&mallory, &c.id, &Value::object()));
    assert_not_found(db.append(&mallory, &c.id, &Message::user("hi"), None));
    assert_not_found(db.append_batch(&mallory, &c.id, &[Message::user("hi")], None));
    assert_not_found(db.load_all(&mallory, &c.id));
    assert_not_found(db.load_last(&mallory, &c.id, 5));
    assert_not_found(db.count(&mallory, &c.id));
    assert_not_found(db.window(&mallory, &c.id, &Window::all()));
    assert_not_found(db.delete_conversation(&mallory, &c.id));
    let called = Cell::new(false);
    assert_not_found(db.turn(&mallory, "hi", &TurnOptions::in_conversation(c.id.as_str()), |_, _, _| {
        called.set(true);
        Ok(AgentReply::text("no"))
    }));
    assert!(!called.get(), "the agent must not run for a foreign conversation");
    assert_eq!(db.delete_all_conversations(&mallory).unwrap(), 0);
    assert!(db.list_conversations(&mallory, None, 100).unwrap().items.is_empty());

    // A foreign id reads exactly like a missing one.
    let foreign = db.get_conversation(&mallory, &c.id).unwrap_err();
    db.delete_conversation(&alice, &c.id).unwrap();
    let missing = db.get_conversation(&mallory, &c.id).unwrap_err();
    assert_eq!(foreign, missing);
}

// ---- Messages ----------------------------------------------------------------------------

fn append_batch_idempotency_and_conflict(db: TestDb) {
    let u = user();
    let c = db.create_conversation(&u, None, None).unwrap().id;
    let m1 = db.append(&u, &c, &Message::system("be brief"), None).unwrap();
    assert_eq!((m1.seq, m1.role, m1.conversation_id.as_str()), (1, Role::System, c.as_str()));
    assert!(m1.created_at_us > 0);
    let m2 = db
        .append(&u, &c, &Message::user("hi").with_metadata(Value::object().with("k", "v")).with_token_count(7), Some(1))
        .unwrap();
    assert_eq!(m2.seq, 2);
    assert_eq!(m2.metadata, Value::object().with("k", "v"));
    assert_eq!(m2.token_count, Some(7));

    let batch = db
        .append_batch(
            &u,
            &c,
            &[
                Message::assistant_tool_calls(vec![ToolCall::new("call_1", "lookup", r#"{"q":"x"}"#)]),
                Message::tool("call_1", "result").with_name("lookup"),
                Message::assistant("done").with_idempotency_key("reply-1"),
            ],
            Some(2),
        )
        .unwrap();
    assert_eq!(batch.iter().map(|m| m.seq).collect::<Vec<_>>(), [3, 4, 5]);
    assert_eq!(batch[0].tool_calls, vec![ToolCall::new("call_1", "lookup", r#"{"q":"x"}"#)]);
    assert_eq!(batch[1].tool_call_id.as_deref(), Some("call_1"));
    assert_eq!(batch[1].name.as_deref(), Some("lookup"));

    // Idempotency: the stored message comes back, nothing is appended (even with other content
    // and a stale expected_last_seq).
    let again = db.append(&u, &c, &Message::assistant("different").with_idempotency_key("reply-1"), Some(1)).unwrap();
    assert_eq!(again, batch[2]);
    assert_eq!(db.count(&u, &c).unwrap(), 5);
    let mixed = db
        .append_batch(
            &u,
            &c,
            &[
                Message::assistant("dup").with_idempotency_key("reply-1"),
                Message::user("new").with_idempotency_key("u-6"),
            ],
            None,
        )
        .unwrap();
    assert_eq!(mixed[0], batch[2]);
    assert_eq!(mixed[1].seq, 6);
    assert_eq!(db.count(&u, &c).unwrap(), 6);

    // Compare-and-append.
    match db.append(&u, &c, &Message::user("late"), Some(5)) {
        Err(Error::Conflict(msg)) => assert!(!msg.is_empty()),
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert!(matches!(db.append_batch(&u, &c, &[Message::user("late")], Some(0)), Err(Error::Conflict(_))));
    assert_eq!(db.count(&u, &c).unwrap(), 6);
    assert_eq!(db.append(&u, &c, &Message::user("on time"), Some(6)).unwrap().seq, 7);
    assert_eq!(db.get_conversation(&u, &c).unwrap().last_seq, 7);
    assert_not_found(db.append(&u, "no-such-conversation", &Message::user("x"), None));
}

fn invalid_messages_write_nothing(db: TestDb) {
    let u = user();
    let c = db.create_conversation(&u, None, None).unwrap().id;
    assert_invalid(db.append(&u, &c, &Message::new(Role::Tool, "no call id"), None), "tool_call_id");
    assert_invalid(db.append(&u, &c, &Message::user("x").with_metadata(Value::Array(vec![])), None), "metadata");
    assert_invalid(db.append(&u, &c, &Message::user("nul \0 inside"), None), "content");
    assert_invalid(db.append(&u, &c, &Message::user("x").with_token_count(-1), None), "token_count");
    assert_invalid(
        db.append(&u, &c, &Message::assistant_tool_calls(vec![ToolCall::new("a", "f", "{not json")]), None),
        "tool_calls[0].function.arguments",
    );
    assert_invalid(
        db.append_batch(&u, &c, &[Message::user("fine"), Message::new(Role::Tool, "no id")], None),
        "messages[1].tool_call_id",
    );
    assert_invalid(db.append_batch(&u, &c, &[], None), "messages");
    assert_invalid(db.append(&u, "", &Message::user("x"), None), "conversation_id");
    assert_eq!(db.count(&u, &c).unwrap(), 0, "nothing written");
}

fn loads_and_count(db: TestDb) {
    let u = user();
    let c = db.create_conversation(&u, None, None).unwrap().id;
    assert_eq!(db.count(&u, &c).unwrap(), 0);
    assert!(db.load_all(&u, &c).unwrap().is_empty());
    let msgs: Vec<Message> = (1..=10).map(|i| Message::user(format!("m{i}"))).collect();
    db.append_batch(&u, &c, &msgs, None).unwrap();

    let seqs = |v: Vec<Message>| v.iter().map(|m| m.seq).collect::<Vec<_>>();
    assert_eq!(db.count(&u, &c).unwrap(), 10);
    let all = db.load_all(&u, &c).unwrap();
    assert_eq!(all.iter().map(|m| m.content.as_str()).collect::<Vec<_>>()[..3], ["m1", "m2", "m3"]);
    assert_eq!(seqs(all), (1..=10).collect::<Vec<_>>());
    assert_eq!(seqs(db.load_last(&u, &c, 3).unwrap()), [8, 9, 10]);
    assert_eq!(seqs(db.load_last(&u, &c, 50).unwrap()).len(), 10);
    assert_eq!(seqs(db.load_after(&u, &c, 5, 2).unwrap()), [6, 7]);
    assert_eq!(seqs(db.load_after(&u, &c, 0, 100).unwrap()).len(), 10);
    assert!(db.load_after(&u, &c, 10, 5).unwrap().is_empty());
    assert_eq!(seqs(db.load_before(&u, &c, 5, 2).unwrap()), [3, 4]);
    assert_eq!(seqs(db.load_before(&u, &c, 3, 10).unwrap()), [1, 2]);
    assert_eq!(seqs(db.load_before(&u, &c, 11, 3).unwrap()), [8, 9, 10]);
    // Note: the C++ implementation reads the key range [before - limit, before), so a before_seq
    // past the end (e.g. i64::MAX) returns nothing rather than "the ones just before it".
    assert_invalid(db.load_after(&u, &c, 0, 0), "limit");
    assert_invalid(db.load_before(&u, &c, 5, 10_001), "limit");

    // Undo from the end: seqs stay dense, expected_last_seq guards concurrent undos.
    assert!(matches!(db.truncate(&u, &c, 8, Some(9)), Err(Error::Conflict(_))));
    assert_eq!(db.truncate(&u, &c, 8, Some(10)).unwrap(), 2);
    assert_eq!(db.truncate(&u, &c, 8, None).unwrap(), 0);
    assert_invalid(db.truncate(&u, &c, -1, None), "after_seq");
    assert_not_found(db.truncate("someone-else", &c, 0, None));
    assert_eq!(db.append(&u, &c, &Message::user("m9 again"), None).unwrap().seq, 9);
    assert_eq!(db.count(&u, &c).unwrap(), 9);
}

fn unicode_round_trip(db: TestDb) {
    let u = format!("{}-ユーザー-🙂", user());
    let texts = [
        "héllo wörld — naïve café",
        "日本語のテキスト、中文，한국어",
        "עברית and العربية (RTL)",
        "emoji 🌍🎉👩‍👩‍👧‍👦 flags 🇫🇷 and 𝄞 (astral)",
        "e\u{301} combining, zero\u{200b}width, \u{feff}BOM",
        "quotes \" ' and backslash \\ and slash /",
        "controls \u{1}\u{8}\u{c}\u{1f}\t\r\n end",
        "{\"looks\": [\"like json\"]}",
        "\u{7f}\u{80}\u{ffff}\u{10ffff}",
    ];
    let title = "Ünïcödé 🧪 \"title\"\n";
    let meta = Value::object().with("ключ", "значение 🔑").with("\u{1}ctl\"", Value::Array(vec!["日本".into()]));
    let c = db.create_conversation(&u, Some(title), Some(&meta)).unwrap();
    assert_eq!(c.title, title);
    assert_eq!(c.metadata, meta);
    assert_eq!(c.user_id, u);

    for t in texts {
        let stored = db.append(&u, &c.id, &Message::user(t).with_metadata(Value::object().with("t", t)), None).unwrap();
        assert_eq!(stored.content, t);
    }
    let call = ToolCall::new("call_ü", "wörk", r#"{"text":"日本 🌍 \"q\" \\ \n"}"#);
    db.append_batch(
        &u,
        &c.id,
        &[Message::assistant_tool_calls(vec![call.clone()]), Message::tool("call_ü", "résultat ✓").with_name("wörk")],
        None,
    )
    .unwrap();

    let all = db.load_all(&u, &c.id).unwrap();
    for (m, t) in all.iter().zip(texts) {
        assert_eq!(m.content, t);
        assert_eq!(m.metadata.get("t").and_then(Value::as_str), Some(t));
    }
    assert_eq!(all[texts.len()].tool_calls, vec![call]);
    assert_eq!(all[texts.len() + 1].content, "résultat ✓");
    assert_eq!(all[texts.len() + 1].name.as_deref(), Some("wörk"));
    assert_eq!(db.list_conversations(&u, None, 10).unwrap().items[0].title, title);

    // Through a turn, both ways.
    let said = "¿qué hora es? 🕰️ \"now\"";
    let r = db
        .turn(&u, said, &TurnOptions::in_conversation(c.id.as_str()), |h, user, _| {
            assert_eq!(h.last().unwrap().content, said);
            Ok(AgentReply::text(format!("{user} → {said} ✔")))
        })
        .unwrap();
    assert_eq!(r.reply, format!("{u} → {said} ✔"));
    assert_eq!(db.load_last(&u, &c.id, 1).unwrap()[0].content, r.reply);
}

// ---- Turns -------------------------------------------------------------------------------

fn turn_creates_and_continues(db: TestDb) {
    let u = user();
    let mut seen_conversation = String::new();
    let first = db
        .turn(&u, "Hello", &TurnOptions::default().with_title("greeting"), |history, user, conversation| {
            assert_eq!(history.len(), 1);
            assert_eq!((history[0].role, history[0].content.as_str(), history[0].seq), (Role::User, "Hello", 1));
            assert_eq!(user, u);
            seen_conversation = conversation.to_owned();
            Ok(AgentReply::text("Hi there"))
        })
        .unwrap();
    assert!(first.created && !first.replayed);
    assert_eq!(first.conversation_id, seen_conversation);
    assert_eq!((first.reply.as_str(), first.user_seq, first.reply_seq), ("Hi there", 1, 2));
    assert!(first.tool_calls.is_empty());
    assert_eq!(db.get_conversation(&u, &first.conversation_id).unwrap().title, "greeting");

    let options = TurnOptions {
        conversation_id: Some(first.conversation_id.clone()),
        message_metadata: Some(Value::object().with("client", "rust")),
        ..TurnOptions::default()
    };
    let second = db
        .turn(&u, "How are you?", &options, |history, _, _| {
            let contents: Vec<&str> = history.iter().map(|m| m.content.as_str()).collect();
            assert_eq!(contents, ["Hello", "Hi there", "How are you?"], "the agent sees the stored history");
            Ok(AgentReply {
                content: "Fine".into(),
                tool_calls: vec![ToolCall::new("call_x", "noop", "{}")],
                metadata: Value::object().with("model", "test"),
                ..AgentReply::default()
            })
        })
        .unwrap();
    assert!(!second.created && !second.replayed);
    assert_eq!(second.conversation_id, first.conversation_id);
    assert_eq!((second.user_seq, second.reply_seq), (3, 4));
    assert_eq!(second.tool_calls, vec![ToolCall::new("call_x", "noop", "{}")]);

    let all = db.load_all(&u, &first.conversation_id).unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[2].metadata, Value::object().with("client", "rust"));
    assert_eq!(all[3].role, Role::Assistant);
    assert_eq!(all[3].metadata, Value::object().with("model", "test"));
    assert_eq!(all[3].tool_calls, second.tool_calls);

    assert_invalid(db.turn("", "x", &TurnOptions::default(), echo), "user_id");
    assert_invalid(db.turn(&u, "nul\0", &TurnOptions::default(), echo), "message");
    assert_not_found(db.turn(&u, "x", &TurnOptions::in_conversation("missing"), echo));
}

fn turn_stores_intermediate_tool_messages_in_order(db: TestDb) {
    let u = user();
    let r = db
        .turn(&u, "What is 6*7? And the time?", &TurnOptions::default(), |history, _, _| {
            let seq = history.last().unwrap().seq;
            let calc = ToolCall::new(format!("call_{seq}_a"), "calculator", r#"{"expression":"6*7"}"#);
            let clock = ToolCall::new(format!("call_{seq}_b"), "clock", r#"{"timezone":"UTC"}"#);
            Ok(AgentReply {
                content: "6*7 = 42; it is noon.".into(),
                intermediate: vec![
                    Message::assistant_tool_calls(vec![calc.clone(), clock.clone()]),
                    Message::tool(calc.id.clone(), "42").with_name("calculator"),
                    Message::tool(clock.id.clone(), "12:00").with_name("clock"),
                    Message::assistant_tool_calls(vec![ToolCall::new(
                        "call_again",
                        "calculator",
                        r#"{"expression":"1"}"#,
                    )]),
                    Message::tool("call_again", "1"),
                ],
                ..AgentReply::default()
            })
        })
        .unwrap();
    assert_eq!((r.user_seq, r.reply_seq), (1, 7));
    let all = db.load_all(&u, &r.conversation_id).unwrap();
    let shape: Vec<(Role, &str, usize, Option<&str>)> =
        all.iter().map(|m| (m.role, m.content.as_str(), m.tool_calls.len(), m.tool_call_id.as_deref())).collect();
    assert_eq!(
        shape,
        [
            (Role::User, "What is 6*7? And the time?", 0, None),
            (Role::Assistant, "", 2, None),
            (Role::Tool, "42", 0, Some("call_1_a")),
            (Role::Tool, "12:00", 0, Some("call_1_b")),
            (Role::Assistant, "", 1, None),
            (Role::Tool, "1", 0, Some("call_again")),
            (Role::Assistant, "6*7 = 42; it is noon.", 0, None),
        ]
    );
    assert_eq!(all[1].tool_calls[0].arguments, r#"{"expression":"6*7"}"#);
    assert_eq!(all[2].name.as_deref(), Some("calculator"));

    // Invalid agent output is an agent error and none of it is stored.
    let err = db
        .turn(&u, "bad tools", &TurnOptions::in_conversation(r.conversation_id.as_str()), |_, _, _| {
            Ok(AgentReply {
                content: "x".into(),
                intermediate: vec![Message::user("users are not intermediate")],
                ..AgentReply::default()
            })
        })
        .unwrap_err();
    assert!(matches!(err, Error::Agent(_)), "{err:?}");
    assert_eq!(db.count(&u, &r.conversation_id).unwrap(), 8, "only the user message was added");
}

fn agent_error_keeps_only_the_user_message(db: TestDb) {
    let u = user();
    let c = db.create_conversation(&u, None, None).unwrap().id;
    let options = TurnOptions::in_conversation(c.as_str()).with_idempotency_key("req-1");
    let err = db.turn(&u, "Hello?", &options, |_, _, _| Err("model unavailable (503)".to_owned())).unwrap_err();
    match &err {
        Error::Agent(msg) => assert!(msg.contains("model unavailable (503)"), "{msg}"),
        other => panic!("expected Agent, got {other:?}"),
    }
    let all = db.load_all(&u, &c).unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!((all[0].role, all[0].content.as_str()), (Role::User, "Hello?"));

    // A retry with the key runs the agent again without duplicating the user message.
    let r = db.turn(&u, "Hello?", &options, echo).unwrap();
    assert!(!r.replayed);
    assert_eq!((r.user_seq, r.reply_seq, r.reply.as_str()), (1, 2, "echo: Hello?"));
    assert_eq!(db.count(&u, &c).unwrap(), 2);

    // An error message with a NUL byte still arrives.
    let err =
        db.turn(&u, "again", &TurnOptions::in_conversation(c.as_str()), |_, _, _| Err("a\0b".into())).unwrap_err();
    assert!(matches!(&err, Error::Agent(m) if m.starts_with('a') && m.ends_with('b')), "{err:?}");
}

fn panicking_agent_becomes_agent_error(db: TestDb) {
    let u = user();
    let c = db.create_conversation(&u, None, None).unwrap().id;
    let err = db
        .turn(&u, "boom?", &TurnOptions::in_conversation(c.as_str()), |_, _, _| -> Result<AgentReply, String> {
            panic!("the model exploded")
        })
        .unwrap_err();
    match &err {
        Error::Agent(msg) => assert!(msg.contains("the model exploded"), "{msg}"),
        other => panic!("expected Agent, got {other:?}"),
    }
    // A panic with a String payload, and one with a non-string payload.
    let err = db
        .turn(&u, "boom 2", &TurnOptions::in_conversation(c.as_str()), |h, _, _| -> Result<AgentReply, String> {
            panic!("formatted {}", h.len())
        })
        .unwrap_err();
    assert!(matches!(&err, Error::Agent(m) if m.contains("formatted 2")), "{err:?}");
    let err = db
        .turn(&u, "boom 3", &TurnOptions::in_conversation(c.as_str()), |_, _, _| -> Result<AgentReply, String> {
            std::panic::panic_any(42_u8)
        })
        .unwrap_err();
    assert!(matches!(err, Error::Agent(_)), "{err:?}");
    assert_eq!(db.count(&u, &c).unwrap(), 3, "only the user messages");
    assert!(db.load_all(&u, &c).unwrap().iter().all(|m| m.role == Role::User));

    // The process and the database are fine afterwards.
    let r = db.turn(&u, "still there?", &TurnOptions::in_conversation(c.as_str()), echo).unwrap();
    assert_eq!(r.reply, "echo: still there?");
}

fn idempotent_turn_retry_does_not_call_the_agent(db: TestDb) {
    let u = user();
    let calls = Cell::new(0);
    let agent = |h: &[Message], _: &str, _: &str| {
        calls.set(calls.get() + 1);
        Ok(AgentReply::text(format!("reply #{} to {}", calls.get(), h.last().unwrap().content)))
    };
    // A creating turn with a key: the retry finds the same conversation.
    let options = TurnOptions::default().with_idempotency_key("create-1");
    let first = db.turn(&u, "start", &options, agent).unwrap();
    let retry = db.turn(&u, "start", &options, agent).unwrap();
    assert_eq!(calls.get(), 1, "the retry must not call the agent");
    assert!(first.created && !first.replayed);
    assert!(retry.replayed);
    assert_eq!(retry.conversation_id, first.conversation_id);
    assert_eq!((retry.reply.as_str(), retry.user_seq, retry.reply_seq), (first.reply.as_str(), 1, 2));

    let options = TurnOptions::in_conversation(first.conversation_id.as_str()).with_idempotency_key("req-2");
    let second = db.turn(&u, "next", &options, agent).unwrap();
    let again = db.turn(&u, "next", &options, agent).unwrap();
    assert_eq!(calls.get(), 2);
    assert!(again.replayed && !second.replayed);
    assert_eq!(again.reply, second.reply);
    assert_eq!(db.count(&u, &first.conversation_id).unwrap(), 4);
    assert_eq!(db.list_conversations(&u, None, 10).unwrap().items.len(), 1);
}

fn seed_history(db: &Database, u: &str) -> String {
    let c = db.create_conversation(u, None, None).unwrap().id;
    let mut msgs = vec![Message::system("You are terse.").with_token_count(10)];
    for i in 1..=3 {
        msgs.push(Message::user(format!("u{i}")).with_token_count(10));
        msgs.push(Message::assistant(format!("a{i}")).with_token_count(10));
    }
    db.append_batch(u, &c, &msgs, None).unwrap();
    c
}

fn contents(v: &[Message]) -> Vec<&str> {
    v.iter().map(|m| m.content.as_str()).collect()
}

fn windows(db: TestDb) {
    let u = user();
    let c = seed_history(&db, &u);
    assert_eq!(db.window(&u, &c, &Window::all()).unwrap().len(), 7);
    assert_eq!(contents(&db.window(&u, &c, &Window::last(4)).unwrap()), ["You are terse.", "u2", "a2", "u3", "a3"]);
    assert_eq!(contents(&db.window(&u, &c, &Window::last(4).keep_system(false)).unwrap()), ["u2", "a2", "u3", "a3"]);
    // 35 tokens: the system message's 10, then two 10-token messages.
    assert_eq!(contents(&db.window(&u, &c, &Window::tokens(35)).unwrap()), ["You are terse.", "u3", "a3"]);
    assert_invalid(db.window(&u, &c, &Window::last(0)), "window.max_messages");
    assert_invalid(db.window(&u, &c, &Window::tokens(0)), "window.token_budget");

    // A tool-call group is never split: it is dropped whole (with everything before it).
    db.append_batch(
        &u,
        &c,
        &[
            Message::user("u4"),
            Message::assistant_tool_calls(vec![ToolCall::new("t1", "f", "{}")]),
            Message::tool("t1", "r1"),
            Message::assistant("a4"),
        ],
        None,
    )
    .unwrap();
    let w = db.window(&u, &c, &Window::last(2)).unwrap();
    assert_eq!(contents(&w), ["You are terse.", "a4"]);
    let w = db.window(&u, &c, &Window::last(3)).unwrap();
    assert_eq!(
        w.iter().map(|m| m.role).collect::<Vec<_>>(),
        [Role::System, Role::Assistant, Role::Tool, Role::Assistant]
    );
}

fn turn_uses_window(db: TestDb) {
    let u = user();
    let c = seed_history(&db, &u);
    let options = TurnOptions::in_conversation(c.as_str()).with_window(Window::last(2));
    let r = db
        .turn(&u, "u4", &options, |h, _, _| {
            assert_eq!(contents(h), ["You are terse.", "a3", "u4"]);
            Ok(AgentReply::text("a4"))
        })
        .unwrap();
    assert_eq!(r.user_seq, 8);
    let options = TurnOptions::in_conversation(c.as_str()).with_window(Window::last(1).keep_system(false));
    db.turn(&u, "u5", &options, |h, _, _| {
        assert_eq!(contents(h), ["u5"]);
        Ok(AgentReply::text("a5"))
    })
    .unwrap();
    assert_invalid(
        db.turn(&u, "x", &TurnOptions::in_conversation(c.as_str()).with_window(Window::last(0)), echo),
        "window.max_messages",
    );
}

fn shared_database_four_threads(db: TestDb) {
    let db = Arc::new(db);
    let owner = user();
    let shared = db.turn(&owner, "shared", &TurnOptions::default(), echo).unwrap();
    let agent_calls = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let db = Arc::clone(&db);
            let owner = owner.clone();
            let shared_id = shared.conversation_id.clone();
            let agent_calls = Arc::clone(&agent_calls);
            std::thread::spawn(move || {
                let u = user();
                let mut conversation: Option<String> = None;
                for i in 0..5 {
                    let text = format!("t{t} m{i}");
                    let options = TurnOptions { conversation_id: conversation.clone(), ..TurnOptions::default() };
                    let r = db
                        .turn(&u, &text, &options, |h, _, _| {
                            agent_calls.fetch_add(1, Ordering::Relaxed);
                            assert_eq!(h.len(), 2 * i + 1, "own history only");
                            echo(h, "", "")
                        })
                        .unwrap();
                    assert_eq!(r.user_seq, 2 * i as i64 + 1);
                    conversation = Some(r.conversation_id);
                    // And one turn on the shared conversation.
                    db.turn(
                        &owner,
                        &format!("shared {text}"),
                        &TurnOptions::in_conversation(shared_id.as_str()),
                        |h, _, _| {
                            agent_calls.fetch_add(1, Ordering::Relaxed);
                            echo(h, "", "")
                        },
                    )
                    .unwrap();
                }
                (u, conversation.unwrap())
            })
        })
        .collect();
    for h in handles {
        let (u, c) = h.join().expect("thread panicked");
        let all = db.load_all(&u, &c).unwrap();
        assert_eq!(all.len(), 10);
        assert!(all.iter().enumerate().all(|(i, m)| m.seq == i as i64 + 1));
    }
    assert_eq!(agent_calls.load(Ordering::Relaxed), 40);
    let all = db.load_all(&owner, &shared.conversation_id).unwrap();
    assert_eq!(all.len(), 2 + 4 * 5 * 2);
    assert!(all.iter().enumerate().all(|(i, m)| m.seq == i as i64 + 1), "dense seqs");
    // Each reply comes after its own user message.
    for m in all.iter().filter(|m| m.role == Role::Assistant) {
        let said = m.content.strip_prefix("echo: ").unwrap();
        let user_msg = all.iter().find(|x| x.role == Role::User && x.content == said).unwrap();
        assert!(user_msg.seq < m.seq);
    }
}

fn reject_concurrent_turns(db: TestDb) {
    let u = user();
    let c = db.create_conversation(&u, None, None).unwrap().id;
    let options = TurnOptions { conversation_id: Some(c.clone()), reject_concurrent: true, ..TurnOptions::default() };
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (db_ref, u_ref, options_ref) = (&*db, &u, &options);
    std::thread::scope(|s| {
        let slow = s.spawn(move || {
            let (db, u, options) = (db_ref, u_ref, options_ref);
            db.turn(u, "slow", options, |h, _, _| {
                started_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                echo(h, "", "")
            })
        });
        started_rx.recv().unwrap();
        let err = db.turn(&u, "fast", &options, echo).unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{err:?}");
        go_tx.send(()).unwrap();
        let r = slow.join().unwrap().unwrap();
        assert_eq!(r.reply, "echo: slow");
    });
    assert_eq!(db.turn(&u, "after", &options, echo).unwrap().reply, "echo: after");
}

fn keyed_duplicate_waits_for_the_running_turn(db: TestDb) {
    let u = user();
    let c = db.create_conversation(&u, None, None).unwrap().id;
    let options = TurnOptions::in_conversation(c.clone()).with_idempotency_key("rust-dup");
    let mut inner = None;
    let r = db
        .turn(&u, "same", &options, |_, user, conv| {
            // The same keyed turn while this one runs: it waits duplicate_wait, then Conflict.
            let nested = TurnOptions {
                duplicate_wait: Some(std::time::Duration::from_millis(200)),
                ..TurnOptions::in_conversation(conv).with_idempotency_key("rust-dup")
            };
            inner = Some(db.turn(user, "same", &nested, |_, _, _| Ok(AgentReply::text("twice"))));
            Ok(AgentReply::text("once"))
        })
        .unwrap();
    assert_eq!(r.reply, "once");
    let err = inner.expect("the agent ran").unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    let again = TurnOptions { run_lease: Some(std::time::Duration::from_secs(60)), ..options.clone() };
    let replay = db.turn(&u, "same", &again, |_, _, _| Ok(AgentReply::text("never"))).unwrap();
    assert!(replay.replayed);
    assert_eq!(replay.reply, "once");
    let too_long = TurnOptions { run_lease: Some(std::time::Duration::from_secs(90_000)), ..options };
    assert_invalid(db.turn(&u, "x", &too_long, |_, _, _| Ok(AgentReply::text("y"))), "options.run_lease_ms");
}

fn schema_and_migrate(db: TestDb) {
    let v = db.schema_version().unwrap();
    assert!(v >= 1, "schema version {v}");
    db.migrate().unwrap();
    assert_eq!(db.schema_version().unwrap(), v);
    // A second handle on the same database works alongside the first.
    let other = Database::open_with(&db.url, &Options { pool_size: 1, ..Options::default() }).unwrap();
    assert_eq!(other.schema_version().unwrap(), v);
}

fn split_turn_across_threads(db: TestDb) {
    let u = user();
    let flushed = TurnOptions { flush_user_message: true, ..TurnOptions::default() };
    assert_eq!(db.turn(&u, "flushed", &flushed, echo).unwrap().reply_seq, 2);
    let begun = db.begin_turn(&u, "what is 6*7?", &TurnOptions::default()).unwrap();
    assert!(begun.created);
    assert_eq!(begun.user_seq, 1);
    assert_eq!(begun.history.len(), 1);
    assert_eq!(begun.history[0].content, "what is 6*7?");
    assert!(begun.completed.is_none());
    let token = begun.token.clone().expect("a token");
    // The model runs elsewhere; another handle on the database (another instance) completes.
    let url = db.url.clone();
    let user_id = u.clone();
    let result = std::thread::spawn(move || {
        let other = Database::open_with(&url, &Options { pool_size: 1, ..Options::default() }).unwrap();
        let mut reply = AgentReply::text("42");
        reply.metadata = Value::object().with("model", "threaded");
        other.complete_turn(&user_id, &token, &reply).unwrap()
    })
    .join()
    .unwrap();
    assert_eq!((result.user_seq, result.reply_seq, result.reply.as_str()), (1, 2, "42"));
    assert!(!result.replayed);
    let token = begun.token.as_deref().unwrap();
    let again = db.complete_turn(&u, token, &AgentReply::text("other")).unwrap();
    assert!(again.replayed);
    assert_eq!(again.reply, "42");
    let stored = db.load_all(&u, &begun.conversation_id).unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[1].metadata.get("model").and_then(Value::as_str), Some("threaded"));
}

fn split_turn_errors_and_fail(db: TestDb) {
    let u = user();
    let c = db.create_conversation(&u, None, None).unwrap().id;
    let options = TurnOptions::in_conversation(c.clone()).with_idempotency_key("rust-split");
    let begun = db.begin_turn(&u, "hi", &options).unwrap();
    let token = begun.token.clone().unwrap();
    assert_not_found(db.complete_turn("someone-else", &token, &AgentReply::text("x")));
    assert_invalid(db.complete_turn(&u, "cst1.nonsense", &AgentReply::text("x")), "turn_token");
    let mut bad = AgentReply::text("x");
    bad.intermediate.push(Message::new(Role::User, "not the agent's"));
    assert_invalid(db.complete_turn(&u, &token, &bad), "intermediate[0].role");
    assert_eq!(db.count(&u, &c).unwrap(), 1);
    // Failed: the retry with the key begins at once and reuses the stored user message.
    db.fail_turn(&u, &token, Some("the model timed out")).unwrap();
    let retry = db.begin_turn(&u, "hi", &options).unwrap();
    assert_eq!(retry.user_seq, begun.user_seq);
    db.complete_turn(&u, retry.token.as_deref().unwrap(), &AgentReply::text("done")).unwrap();
    let replay = db.begin_turn(&u, "hi", &options).unwrap();
    assert!(replay.token.is_none());
    let completed = replay.completed.expect("completed");
    assert!(completed.replayed);
    assert_eq!(completed.reply, "done");
    db.delete_conversation(&u, &c).unwrap();
    assert_not_found(db.fail_turn(&u, &token, None));
}

fn conversation_keys(db: TestDb) {
    let u = user();
    let (c, created) = db.get_or_create_conversation(&u, "thread-1", Some("t"), None).unwrap();
    assert!(created);
    assert_eq!((c.external_key.as_deref(), c.title.as_str()), (Some("thread-1"), "t"));
    let (again, created) = db.get_or_create_conversation(&u, "thread-1", None, None).unwrap();
    assert!(!created);
    assert_eq!(again.id, c.id);
    assert_eq!(db.conversation_by_key(&u, "thread-1").unwrap().id, c.id);
    assert_not_found(db.conversation_by_key(&u, "no-such-key"));
    assert_invalid(db.get_or_create_conversation(&u, "", None, None), "external_key");
    assert_eq!(db.get_conversation(&u, &c.id).unwrap().external_key.as_deref(), Some("thread-1"));

    let first = db.turn(&u, "hi", &TurnOptions::by_key("thread-2"), echo).unwrap();
    assert!(first.created);
    let second = db.turn(&u, "again", &TurnOptions::by_key("thread-2"), echo).unwrap();
    assert_eq!((second.conversation_id.as_str(), second.created, second.user_seq), (first.conversation_id.as_str(), false, 3));
    let both = TurnOptions { conversation_id: Some(first.conversation_id.clone()), ..TurnOptions::by_key("thread-2") };
    assert_invalid(db.turn(&u, "x", &both, echo), "conversation_key");
    assert_eq!(db.count(&u, &first.conversation_id).unwrap(), 4);
}

fn developer_role(db: TestDb) {
    let u = user();
    let c = db.create_conversation(&u, None, None).unwrap().id;
    let mut batch = vec![Message::new(Role::Developer, "answer in French")];
    batch.extend((0..5).map(|i| Message::user(format!("m{i}"))));
    db.append_batch(&u, &c, &batch, None).unwrap();
    let w = db.window(&u, &c, &Window::last(2)).unwrap();
    assert_eq!(w.iter().map(|m| (m.seq, m.role)).collect::<Vec<_>>(), [(1, Role::Developer), (5, Role::User), (6, Role::User)]);
}

fn summaries(db: TestDb) {
    let u = user();
    let c = db.create_conversation(&u, None, None).unwrap().id;
    let mut batch = vec![Message::new(Role::System, "be brief")];
    batch.extend((2..=10).map(|i| Message::user(format!("m{i}"))));
    db.append_batch(&u, &c, &batch, None).unwrap();
    let s = db.add_summary(&u, &c, 6, "the first six", Some(&Value::object().with("by", "rust"))).unwrap();
    assert_eq!((s.covers_through_seq, s.content.as_str()), (6, "the first six"));
    assert_eq!(db.summaries(&u, &c).unwrap(), vec![s]);
    let seqs = |w: Vec<Message>| w.iter().map(|m| m.seq).collect::<Vec<_>>();
    assert_eq!(seqs(db.window(&u, &c, &Window::last(2)).unwrap()), [1, 0, 9, 10]);
    assert_eq!(seqs(db.window(&u, &c, &Window::last(2).from_summary(false)).unwrap()), [1, 9, 10]);
    let w = db.window(&u, &c, &Window::all().keep_system(false).summary_role(Role::User)).unwrap();
    assert_eq!((w[0].role, w[0].content.as_str(), w.len()), (Role::User, "the first six", 5));
    assert_invalid(db.add_summary(&u, &c, 11, "past the end", None), "covers_through_seq");
    assert_eq!(db.truncate(&u, &c, 5, None).unwrap(), 5);
    assert!(db.summaries(&u, &c).unwrap().is_empty());
}

fn fork_and_regenerate(db: TestDb) {
    let u = user();
    let first = db.turn(&u, "2+2?", &TurnOptions::default(), echo).unwrap();
    let src = first.conversation_id;
    db.turn(&u, "3+3?", &TurnOptions::in_conversation(src.as_str()), echo).unwrap();
    let fork = db.fork_conversation(&u, &src, 3, Some("again"), None, None).unwrap();
    assert_eq!(fork.forked_from, Some(convstate::ForkOrigin { conversation_id: src.clone(), seq: 3 }));
    assert_eq!((fork.title.as_str(), fork.last_seq), ("again", 3));
    assert_eq!(db.forks(&u, &src).unwrap().iter().map(|c| c.id.clone()).collect::<Vec<_>>(), [fork.id.clone()]);
    let regen = TurnOptions { regenerate: true, ..TurnOptions::in_conversation(fork.id.as_str()) };
    let r = db.turn(&u, "", &regen, echo).unwrap();
    assert_eq!((r.user_seq, r.reply_seq, r.reply.as_str()), (3, 4, "echo: 3+3?"));
    assert_invalid(db.turn(&u, "", &regen, echo), "regenerate");
    assert_invalid(db.fork_conversation(&u, &src, 99, None, None, None), "at_seq");
    assert_not_found(db.forks("someone-else", &src));
}

fn usage(db: TestDb) {
    let u = user();
    let with_usage = |model: Option<&str>, prompt: i64| AgentReply {
        usage: Some(convstate::Usage {
            model: model.map(str::to_owned),
            prompt_tokens: Some(prompt),
            completion_tokens: Some(2),
            ..convstate::Usage::default()
        }),
        ..AgentReply::text("ok")
    };
    let first = db.turn(&u, "q", &TurnOptions::default(), |_, _, _| Ok(with_usage(Some("m"), 10))).unwrap();
    let c = first.conversation_id;
    let pending = db.begin_turn(&u, "q2", &TurnOptions::in_conversation(c.as_str())).unwrap();
    db.complete_turn(&u, pending.token.as_deref().unwrap(), &with_usage(None, 5)).unwrap();
    let report = db.usage(&u, &c).unwrap();
    assert_eq!((report.total.replies, report.total.prompt_tokens, report.total.completion_tokens), (2, 15, 4));
    assert_eq!(report.by_model.iter().map(|m| m.model.clone()).collect::<Vec<_>>(), [None, Some("m".to_owned())]);
    assert_eq!(db.usage_since(&u, 0).unwrap().total.replies, 2);
    assert_not_found(db.usage("someone-else", &c));
}

fn content_parts(db: TestDb) {
    let u = user();
    let parts = Value::Array(vec![
        Value::object().with("type", "text").with("text", "what is this? 🌍"),
        Value::object().with("type", "image_url").with("image_url", Value::object().with("url", "https://x/a.png")),
    ]);
    let opts = TurnOptions { message_parts: Some(parts.clone()), ..TurnOptions::default() };
    let r = db.turn(&u, "", &opts, |h, _, _| Ok(AgentReply::text(format!("parts: {}", h[0].content_parts.is_some())))).unwrap();
    assert_eq!(r.reply, "parts: true");
    let stored = db.load_all(&u, &r.conversation_id).unwrap();
    assert_eq!(stored[0].content_parts, Some(parts.clone()));
    let appended = db.append(&u, &r.conversation_id, &Message::user_parts(parts.clone()), None).unwrap();
    assert_eq!((appended.content_parts, appended.content.as_str()), (Some(parts), ""));
    let bad = Value::Array(vec![Value::object().with("type", "video")]);
    assert_invalid(db.append(&u, &r.conversation_id, &Message::user_parts(bad), None), "content[0].type");
}

fn purge(db: TestDb) {
    let (u, other) = (user(), user());
    let a = db.create_conversation(&u, Some("old"), None).unwrap();
    db.append(&u, &a.id, &Message::user("one"), None).unwrap();
    db.append(&u, &a.id, &Message::user("two"), None).unwrap();
    db.create_conversation(&u, None, None).unwrap();
    let kept = db.create_conversation(&other, None, None).unwrap();
    let future = i64::MAX / 2;
    let dry = db.purge(future, Some(&u), 1, true).unwrap();
    assert_eq!(dry, convstate::PurgeResult { conversations: 2, messages: 2 });
    assert_eq!(db.get_conversation(&u, &a.id).unwrap().last_seq, 2);
    assert_eq!(db.purge(future, Some(&u), 1, false).unwrap(), dry);
    assert_not_found(db.get_conversation(&u, &a.id));
    assert_eq!(db.get_conversation(&other, &kept.id).unwrap().id, kept.id);
    // Nothing is older than the epoch.
    assert_eq!(db.purge(0, Some(&other), 100, false).unwrap(), convstate::PurgeResult::default());
    assert_invalid(db.purge(-1, Some(&u), 100, false), "older_than");
    assert_invalid(db.purge(future, Some(&u), 0, false), "batch_size");
    assert_invalid(db.purge(future, Some(""), 100, false), "user_id");
    assert_invalid(db.purge(future, Some("nul\0user"), 100, false), "user_id");
    assert_eq!(db.get_conversation(&other, &kept.id).unwrap().id, kept.id);
}

fn logger_and_stats(db: TestDb) {
    let lines: Arc<std::sync::Mutex<Vec<(convstate::LogLevel, String)>>> = Arc::default();
    let sink = Arc::clone(&lines);
    let logged = Database::open_with_logger(&db.url, &Options::default(), convstate::LogLevel::Info, move |level, text| {
        sink.lock().unwrap().push((level, text.to_owned()))
    })
    .unwrap();
    assert!(lines.lock().unwrap().iter().any(|(l, t)| *l == convstate::LogLevel::Info && t.starts_with("opened the ")));
    assert!(lines.lock().unwrap().iter().all(|(l, _)| *l >= convstate::LogLevel::Info));
    let u = user();
    let c = logged.create_conversation(&u, None, None).unwrap();
    logged.append(&u, &c.id, &Message::user("SECRET-CONTENT"), None).unwrap();
    assert_not_found(logged.append(&u, "missing", &Message::user("SECRET-CONTENT"), None));
    let stats = logged.stats_json().unwrap();
    let append = stats.get("operations").and_then(|o| o.get("append")).unwrap();
    assert_eq!(append.get("calls").and_then(Value::as_i64), Some(2));
    assert_eq!(append.get("errors").and_then(Value::as_i64), Some(1));
    drop(logged);
    assert!(lines.lock().unwrap().iter().all(|(_, t)| !t.contains("SECRET-CONTENT")));
}
