//! Messages, tool calls, conversations, pages and turn results, with their JSON forms (the
//! OpenAI chat format the C API speaks; see `include/convstate/json.hpp`).
//!
//! Decoding follows the library: `"content": null` reads as `""`, `null` counts as absent for
//! the other optional fields, and unknown fields are ignored. A decoding error is
//! [`Error::InvalidArgument`] naming the field by path (`"tool_calls[0].function.name"`).

use std::fmt;
use std::str::FromStr;

use crate::json::Value;
use crate::Error;

// ---- Role ------------------------------------------------------------------------------------

/// A chat role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Role {
    System,
    #[default]
    User,
    Assistant,
    Tool,
    /// OpenAI's newer name for instructions; kept with the leading system messages of a window.
    Developer,
}

impl Role {
    /// "system", "user", "assistant", "tool" or "developer".
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
            Role::Developer => "developer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Role, Error> {
        match s {
            "system" => Ok(Role::System),
            "user" => Ok(Role::User),
            "assistant" => Ok(Role::Assistant),
            "tool" => Ok(Role::Tool),
            "developer" => Ok(Role::Developer),
            _ => Err(invalid("role", format!("'{s}' is not one of system, developer, user, assistant, tool"))),
        }
    }
}

// ---- Decoding helpers ------------------------------------------------------------------------

fn invalid(field: impl Into<String>, reason: impl fmt::Display) -> Error {
    let field = field.into();
    Error::InvalidArgument { message: format!("invalid {field}: {reason}"), field }
}

/// An object being decoded, with the path prefix of its fields ("" or "messages[2].").
struct Obj<'a> {
    members: &'a [(String, Value)],
    prefix: String,
}

impl<'a> Obj<'a> {
    fn new(v: &'a Value, field: &str, prefix: String) -> Result<Obj<'a>, Error> {
        match v {
            Value::Object(members) => Ok(Obj { members, prefix }),
            _ => Err(invalid(field, "must be a JSON object")),
        }
    }

    fn field(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The member, with null counting as absent.
    fn find(&self, key: &str) -> Option<&'a Value> {
        self.members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v).filter(|v| !v.is_null())
    }

    fn opt_string(&self, key: &str) -> Result<Option<String>, Error> {
        match self.find(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(self.field(key), "must be a string")),
        }
    }

    fn string(&self, key: &str) -> Result<String, Error> {
        self.opt_string(key)?.ok_or_else(|| invalid(self.field(key), "is required"))
    }

    fn opt_int(&self, key: &str) -> Result<Option<i64>, Error> {
        match self.find(key) {
            None => Ok(None),
            Some(Value::Number(crate::json::Number::Int(i))) => Ok(Some(*i)),
            Some(_) => Err(invalid(self.field(key), "must be an integer that fits in 64 signed bits")),
        }
    }

    fn opt_bool(&self, key: &str) -> Result<Option<bool>, Error> {
        match self.find(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(invalid(self.field(key), "must be a boolean")),
        }
    }

    fn metadata(&self) -> Result<Value, Error> {
        match self.find("metadata") {
            None => Ok(Value::object()),
            Some(v @ Value::Object(_)) => Ok(v.clone()),
            Some(_) => Err(invalid(self.field("metadata"), "must be a JSON object")),
        }
    }

    fn array(&self, key: &str) -> Result<&'a [Value], Error> {
        match self.find(key) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(_) => Err(invalid(self.field(key), "must be a JSON array")),
        }
    }
}

fn decode_array<T>(v: &Value, field: &str, decode: impl Fn(&Value, &str) -> Result<T, Error>) -> Result<Vec<T>, Error> {
    let items = v.as_array().ok_or_else(|| invalid(field, "must be a JSON array"))?;
    items.iter().enumerate().map(|(i, item)| decode(item, &format!("{field}[{i}]"))).collect()
}

// ---- ToolCall --------------------------------------------------------------------------------

/// One tool call of an assistant message. JSON (OpenAI format):
/// `{"id", "type": "function", "function": {"name", "arguments"}}`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// JSON text, as the model produced it (the library checks that it parses).
    pub arguments: String,
}

impl ToolCall {
    pub fn new(id: impl Into<String>, name: impl Into<String>, arguments: impl Into<String>) -> ToolCall {
        ToolCall { id: id.into(), name: name.into(), arguments: arguments.into() }
    }

    pub fn to_json(&self) -> Value {
        Value::object().with("id", self.id.as_str()).with("type", "function").with(
            "function",
            Value::object().with("name", self.name.as_str()).with("arguments", self.arguments.as_str()),
        )
    }

    pub fn from_json(v: &Value) -> Result<ToolCall, Error> {
        ToolCall::decode(v, "tool_call")
    }

    fn decode(v: &Value, field: &str) -> Result<ToolCall, Error> {
        let o = Obj::new(v, field, format!("{field}."))?;
        let id = o.string("id")?;
        if let Some(t) = o.opt_string("type")? {
            if t != "function" {
                return Err(invalid(o.field("type"), "must be \"function\""));
            }
        }
        let fname = o.field("function");
        let function = o.find("function").ok_or_else(|| invalid(fname.as_str(), "is required"))?;
        let f = Obj::new(function, &fname, format!("{fname}."))?;
        Ok(ToolCall { id, name: f.string("name")?, arguments: f.string("arguments")? })
    }

    /// A JSON array of tool calls.
    pub fn list_to_json(calls: &[ToolCall]) -> Value {
        Value::Array(calls.iter().map(ToolCall::to_json).collect())
    }

    pub fn list_from_json(v: &Value) -> Result<Vec<ToolCall>, Error> {
        decode_array(v, "tool_calls", ToolCall::decode)
    }
}

// ---- Message ---------------------------------------------------------------------------------

/// A chat message. To append one, fill the first block of fields (the constructors and `with_*`
/// builders help); the library sets `conversation_id`, `seq` and `created_at_us` when it stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    pub content: String,
    /// The content as an OpenAI content-part array instead of text (then `content` is ""):
    /// `[{"type":"text","text":…},{"type":"image_url","image_url":{"url":…}}, …]`.
    pub content_parts: Option<Value>,
    /// Optional participant / tool name.
    pub name: Option<String>,
    /// Assistant messages only.
    pub tool_calls: Vec<ToolCall>,
    /// Required on (and only on) tool messages.
    pub tool_call_id: Option<String>,
    /// A JSON object (`{}` by default).
    pub metadata: Value,
    pub token_count: Option<i64>,
    /// Appending a message whose key is stored already returns the stored message instead.
    pub idempotency_key: Option<String>,

    /// Set by the library ("" before the message is stored).
    pub conversation_id: String,
    /// 1, 2, 3… per conversation, dense (0 before the message is stored).
    pub seq: i64,
    /// UTC microseconds since the epoch (0 before the message is stored); never the order.
    pub created_at_us: i64,
}

impl Default for Message {
    fn default() -> Message {
        Message {
            role: Role::User,
            content: String::new(),
            content_parts: None,
            name: None,
            tool_calls: Vec::new(),
            tool_call_id: None,
            metadata: Value::object(),
            token_count: None,
            idempotency_key: None,
            conversation_id: String::new(),
            seq: 0,
            created_at_us: 0,
        }
    }
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Message {
        Message { role, content: content.into(), ..Message::default() }
    }
    pub fn system(content: impl Into<String>) -> Message {
        Message::new(Role::System, content)
    }
    pub fn user(content: impl Into<String>) -> Message {
        Message::new(Role::User, content)
    }
    pub fn assistant(content: impl Into<String>) -> Message {
        Message::new(Role::Assistant, content)
    }
    /// An assistant message carrying tool calls (and no content).
    pub fn assistant_tool_calls(calls: Vec<ToolCall>) -> Message {
        Message { role: Role::Assistant, tool_calls: calls, ..Message::default() }
    }
    /// A tool result answering the call `tool_call_id`.
    pub fn tool(tool_call_id: impl Into<String>, content: impl Into<String>) -> Message {
        Message {
            role: Role::Tool,
            tool_call_id: Some(tool_call_id.into()),
            content: content.into(),
            ..Message::default()
        }
    }

    /// A user message whose content is an OpenAI content-part array.
    pub fn user_parts(parts: Value) -> Message {
        Message { role: Role::User, content_parts: Some(parts), ..Message::default() }
    }

    pub fn with_name(mut self, name: impl Into<String>) -> Message {
        self.name = Some(name.into());
        self
    }
    pub fn with_metadata(mut self, metadata: Value) -> Message {
        self.metadata = metadata;
        self
    }
    pub fn with_token_count(mut self, n: i64) -> Message {
        self.token_count = Some(n);
        self
    }
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Message {
        self.idempotency_key = Some(key.into());
        self
    }

    /// The full JSON form (stored fields included when set).
    pub fn to_json(&self) -> Value {
        let mut v = self.input_json();
        if !self.conversation_id.is_empty() {
            v.set("conversation_id", self.conversation_id.as_str());
        }
        if self.seq != 0 {
            v.set("seq", self.seq);
        }
        if self.created_at_us != 0 {
            v.set("created_at_us", self.created_at_us);
        }
        v
    }

    /// The fields an append reads (what is sent to the library).
    pub(crate) fn input_json(&self) -> Value {
        let content = self.content_parts.clone().unwrap_or_else(|| Value::from(self.content.as_str()));
        let mut v = Value::object().with("role", self.role.as_str()).with("content", content);
        if let Some(name) = &self.name {
            v.set("name", name.as_str());
        }
        if !self.tool_calls.is_empty() {
            v.set("tool_calls", ToolCall::list_to_json(&self.tool_calls));
        }
        if let Some(id) = &self.tool_call_id {
            v.set("tool_call_id", id.as_str());
        }
        if !self.metadata.is_null() {
            v.set("metadata", self.metadata.clone());
        }
        if let Some(n) = self.token_count {
            v.set("token_count", n);
        }
        if let Some(key) = &self.idempotency_key {
            v.set("idempotency_key", key.as_str());
        }
        v
    }

    pub fn from_json(v: &Value) -> Result<Message, Error> {
        Message::decode(v, "message", String::new())
    }

    fn decode(v: &Value, field: &str, prefix: String) -> Result<Message, Error> {
        let o = Obj::new(v, field, prefix)?;
        let role_name = o.string("role")?;
        let role = role_name.parse::<Role>().map_err(|_| {
            invalid(o.field("role"), format!("'{role_name}' is not one of system, user, assistant, tool"))
        })?;
        let tool_calls = match o.find("tool_calls") {
            None => Vec::new(),
            Some(calls) => decode_array(calls, &o.field("tool_calls"), ToolCall::decode)?,
        };
        let parts = match o.find("content") {
            Some(v @ Value::Array(_)) => Some(v.clone()),
            _ => None,
        };
        Ok(Message {
            role,
            content: if parts.is_some() { String::new() } else { o.opt_string("content")?.unwrap_or_default() },
            content_parts: parts,
            name: o.opt_string("name")?,
            tool_calls,
            tool_call_id: o.opt_string("tool_call_id")?,
            metadata: o.metadata()?,
            token_count: o.opt_int("token_count")?,
            idempotency_key: o.opt_string("idempotency_key")?,
            conversation_id: o.opt_string("conversation_id")?.unwrap_or_default(),
            seq: o.opt_int("seq")?.unwrap_or(0),
            created_at_us: o.opt_int("created_at_us")?.unwrap_or(0),
        })
    }

    /// A JSON array of messages (full form).
    pub fn list_to_json(messages: &[Message]) -> Value {
        Value::Array(messages.iter().map(Message::to_json).collect())
    }

    pub fn list_from_json(v: &Value) -> Result<Vec<Message>, Error> {
        decode_array(v, "messages", |item, field| Message::decode(item, field, format!("{field}.")))
    }
}

// ---- Conversation ----------------------------------------------------------------------------

/// A conversation, owned by exactly one user.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    pub id: String,
    pub user_id: String,
    pub title: String,
    /// A JSON object.
    pub metadata: Value,
    /// The seq of the newest message (0 when empty); doubles as the version.
    pub last_seq: i64,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    /// The host's own key for it (`Database::get_or_create_conversation`), if it has one.
    pub external_key: Option<String>,
    /// A fork's origin: its source conversation and the seq it was forked at.
    pub forked_from: Option<ForkOrigin>,
}

/// Where a fork began: messages 1..`seq` of `conversation_id` (which may since be deleted).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ForkOrigin {
    pub conversation_id: String,
    pub seq: i64,
}

impl Conversation {
    pub fn to_json(&self) -> Value {
        Value::object()
            .with("id", self.id.as_str())
            .with("user_id", self.user_id.as_str())
            .with("title", self.title.as_str())
            .with("metadata", self.metadata.clone())
            .with("last_seq", self.last_seq)
            .with("created_at_us", self.created_at_us)
            .with("updated_at_us", self.updated_at_us)
            .with("external_key", self.external_key.as_deref().map_or(Value::Null, Value::from))
            .with(
                "forked_from",
                self.forked_from.as_ref().map_or(Value::Null, |f| {
                    Value::object().with("conversation_id", f.conversation_id.as_str()).with("seq", f.seq)
                }),
            )
    }

    pub fn from_json(v: &Value) -> Result<Conversation, Error> {
        Conversation::decode(v, "conversation", String::new())
    }

    fn decode(v: &Value, field: &str, prefix: String) -> Result<Conversation, Error> {
        let o = Obj::new(v, field, prefix)?;
        Ok(Conversation {
            id: o.opt_string("id")?.unwrap_or_default(),
            user_id: o.opt_string("user_id")?.unwrap_or_default(),
            title: o.opt_string("title")?.unwrap_or_default(),
            metadata: o.metadata()?,
            last_seq: o.opt_int("last_seq")?.unwrap_or(0),
            created_at_us: o.opt_int("created_at_us")?.unwrap_or(0),
            updated_at_us: o.opt_int("updated_at_us")?.unwrap_or(0),
            external_key: o.opt_string("external_key")?,
            forked_from: match o.find("forked_from") {
                None => None,
                Some(v) => {
                    let f = Obj::new(v, "forked_from", o.field("forked_from") + ".")?;
                    Some(ForkOrigin {
                        conversation_id: f.opt_string("conversation_id")?.unwrap_or_default(),
                        seq: f.opt_int("seq")?.unwrap_or(0),
                    })
                }
            },
        })
    }
}

/// A summary checkpoint: it stands for messages 1..`covers_through_seq` in a window.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary {
    pub conversation_id: String,
    pub covers_through_seq: i64,
    pub content: String,
    /// A JSON object.
    pub metadata: Value,
    pub created_at_us: i64,
}

impl Summary {
    pub fn from_json(v: &Value) -> Result<Summary, Error> {
        Summary::decode(v, "summary", String::new())
    }

    pub fn list_from_json(v: &Value) -> Result<Vec<Summary>, Error> {
        decode_array(v, "summaries", |item, field| Summary::decode(item, field, format!("{field}.")))
    }

    fn decode(v: &Value, field: &str, prefix: String) -> Result<Summary, Error> {
        let o = Obj::new(v, field, prefix)?;
        Ok(Summary {
            conversation_id: o.opt_string("conversation_id")?.unwrap_or_default(),
            covers_through_seq: o.opt_int("covers_through_seq")?.unwrap_or(0),
            content: o.opt_string("content")?.unwrap_or_default(),
            metadata: o.metadata()?,
            created_at_us: o.opt_int("created_at_us")?.unwrap_or(0),
        })
    }
}

/// One page of conversations, most recently updated first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConversationPage {
    pub items: Vec<Conversation>,
    /// Pass to the next list call; `None` on the last page.
    pub next_cursor: Option<String>,
}

impl ConversationPage {
    pub fn to_json(&self) -> Value {
        Value::object()
            .with("items", Value::Array(self.items.iter().map(Conversation::to_json).collect()))
            .with("next_cursor", self.next_cursor.as_deref())
    }

    pub fn from_json(v: &Value) -> Result<ConversationPage, Error> {
        let o = Obj::new(v, "page", String::new())?;
        let items = o
            .array("items")?
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let field = format!("items[{i}]");
                Conversation::decode(item, &field, format!("{field}."))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = o.opt_string("next_cursor")?.filter(|c| !c.is_empty());
        Ok(ConversationPage { items, next_cursor })
    }
}

// ---- TurnResult ------------------------------------------------------------------------------

/// One turn's outcome.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TurnResult {
    pub conversation_id: String,
    /// The reply's content.
    pub reply: String,
    /// The reply's tool calls.
    pub tool_calls: Vec<ToolCall>,
    pub user_seq: i64,
    pub reply_seq: i64,
    /// This turn created the conversation.
    pub created: bool,
    /// An idempotent retry of a completed turn: the agent was not called.
    pub replayed: bool,
}

impl TurnResult {
    pub fn to_json(&self) -> Value {
        Value::object()
            .with("conversation_id", self.conversation_id.as_str())
            .with("reply", self.reply.as_str())
            .with("tool_calls", ToolCall::list_to_json(&self.tool_calls))
            .with("user_seq", self.user_seq)
            .with("reply_seq", self.reply_seq)
            .with("created", self.created)
            .with("replayed", self.replayed)
    }

    pub fn from_json(v: &Value) -> Result<TurnResult, Error> {
        let o = Obj::new(v, "turn_result", String::new())?;
        let tool_calls = match o.find("tool_calls") {
            None => Vec::new(),
            Some(calls) => decode_array(calls, "tool_calls", ToolCall::decode)?,
        };
        Ok(TurnResult {
            conversation_id: o.string("conversation_id")?,
            reply: o.opt_string("reply")?.unwrap_or_default(),
            tool_calls,
            user_seq: o.opt_int("user_seq")?.unwrap_or(0),
            reply_seq: o.opt_int("reply_seq")?.unwrap_or(0),
            created: o.opt_bool("created")?.unwrap_or(false),
            replayed: o.opt_bool("replayed")?.unwrap_or(false),
        })
    }
}

/// A turn begun by `Database::begin_turn`: the user message is stored; run the model on
/// `history`, then complete or fail the turn with `token`, from any thread or process.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingTurn {
    pub conversation_id: String,
    pub user_seq: i64,
    /// This turn created the conversation.
    pub created: bool,
    /// The window, in seq order, ending with this turn's user message.
    pub history: Vec<Message>,
    /// The turn token (opaque; no secret): `None` when `completed` is set.
    pub token: Option<String>,
    /// A keyed retry of a completed turn: its stored result; there is nothing to run.
    pub completed: Option<TurnResult>,
}

impl PendingTurn {
    pub fn from_json(v: &Value) -> Result<PendingTurn, Error> {
        let o = Obj::new(v, "pending_turn", String::new())?;
        let history = match o.find("history") {
            None => Vec::new(),
            Some(h) => Message::list_from_json(h)?,
        };
        Ok(PendingTurn {
            conversation_id: o.string("conversation_id")?,
            user_seq: o.opt_int("user_seq")?.unwrap_or(0),
            created: o.opt_bool("created")?.unwrap_or(false),
            history,
            token: o.opt_string("token")?,
            completed: o.find("completed").map(TurnResult::from_json).transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse;

    #[test]
    fn message_round_trip() {
        let m = Message {
            role: Role::Assistant,
            content: "x \"y\" 🌍".into(),
            content_parts: None,
            name: Some("bot".into()),
            tool_calls: vec![ToolCall::new("c1", "calc", r#"{"e":"1+2"}"#)],
            tool_call_id: None,
            metadata: Value::object().with("k", 1),
            token_count: Some(12),
            idempotency_key: Some("key".into()),
            conversation_id: "conv".into(),
            seq: 3,
            created_at_us: 1_700_000_000_000_001,
        };
        let text = m.to_json().to_json();
        assert_eq!(Message::from_json(&parse(&text).unwrap()).unwrap(), m);
        assert!(text.contains(r#""tool_calls":[{"id":"c1","type":"function","function":{"name":"calc","arguments":"{\"e\":\"1+2\"}"}}]"#), "{text}");
        // Input form: no stored fields.
        let input = m.input_json();
        assert!(input.get("seq").is_none() && input.get("conversation_id").is_none());
    }

    #[test]
    fn message_decoding_follows_the_library() {
        let m = Message::from_json(
            &parse(r#"{"role":"user","content":null,"name":null,"tool_calls":null,"extra":1}"#).unwrap(),
        )
        .unwrap();
        assert_eq!(m, Message::user(""));
        let err = Message::list_from_json(&parse(r#"[{"role":"user"},{"role":"robot"}]"#).unwrap()).unwrap_err();
        assert!(matches!(&err, Error::InvalidArgument { field, .. } if field == "messages[1].role"), "{err:?}");
        let err = Message::from_json(
            &parse(r#"{"role":"assistant","tool_calls":[{"id":"a","function":{"name":"f"}}]}"#).unwrap(),
        )
        .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument { field, .. } if field == "tool_calls[0].function.arguments"),
            "{err:?}"
        );
        let err = Message::from_json(&parse(r#"{"content":"x"}"#).unwrap()).unwrap_err();
        assert!(matches!(&err, Error::InvalidArgument { field, .. } if field == "role"), "{err:?}");
        let err = Message::from_json(&parse(r#"{"role":"user","seq":1.5}"#).unwrap()).unwrap_err();
        assert!(matches!(&err, Error::InvalidArgument { field, .. } if field == "seq"), "{err:?}");
    }

    #[test]
    fn conversation_page_and_turn_result_round_trip() {
        let c = Conversation {
            id: "id".into(),
            user_id: "u".into(),
            title: "t".into(),
            metadata: Value::object().with("a", Value::Array(vec![1.into(), "b".into()])),
            last_seq: 4,
            created_at_us: 1,
            updated_at_us: 2,
            external_key: None,
            forked_from: None,
        };
        let keyed = Conversation {
            external_key: Some("thread-1".into()),
            forked_from: Some(ForkOrigin { conversation_id: "src".into(), seq: 3 }),
            ..c.clone()
        };
        let page = ConversationPage { items: vec![c, keyed], next_cursor: Some("cur".into()) };
        assert_eq!(ConversationPage::from_json(&parse(&page.to_json().to_json()).unwrap()).unwrap(), page);
        let last = ConversationPage { items: vec![], next_cursor: None };
        assert!(last.to_json().to_json().contains(r#""next_cursor":null"#));
        assert_eq!(ConversationPage::from_json(&last.to_json()).unwrap(), last);

        let r = TurnResult {
            conversation_id: "c".into(),
            reply: "hi".into(),
            tool_calls: vec![ToolCall::new("1", "f", "{}")],
            user_seq: 1,
            reply_seq: 2,
            created: true,
            replayed: false,
        };
        assert_eq!(TurnResult::from_json(&parse(&r.to_json().to_json()).unwrap()).unwrap(), r);
    }

    #[test]
    fn roles() {
        for r in [Role::System, Role::User, Role::Assistant, Role::Tool, Role::Developer] {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("User".parse::<Role>().is_err());
    }
}
