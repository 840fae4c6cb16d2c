//! A small, dependency-free JSON value with a strict parser (RFC 8259) and a compact serializer.
//!
//! - Objects keep their members in document order (`Vec<(String, Value)>`); duplicate keys are
//!   kept as they are, and [`Value::get`] returns the last one (as most parsers do).
//! - Numbers written without a fraction or exponent that fit in an `i64` stay exact integers
//!   ([`Number::Int`]); every other number is an `f64` ([`Number::Float`]). Integers outside the
//!   `i64` range therefore lose precision.
//! - Strings are UTF-8 `String`s: `\uXXXX` escapes are decoded, surrogate pairs combined, and a
//!   lone surrogate is a parse error (it cannot be held in a Rust string).
//! - The serializer writes compact JSON, escaping `"`, `\` and every control character below
//!   U+0020. Non-finite floats (which JSON cannot express) are written as `null`.

use std::fmt;

/// A JSON number: an exact integer or a double.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    /// The value as `f64` (integers beyond 2^53 are rounded).
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }

    /// The value as `i64` when it is an integer (a float with an integral value in range counts).
    pub fn as_i64(self) -> Option<i64> {
        match self {
            Number::Int(i) => Some(i),
            Number::Float(f) => {
                if f.fract() == 0.0 && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f) {
                    Some(f as i64)
                } else {
                    None
                }
            }
        }
    }
}

/// A JSON value.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Value>),
    /// Members in document order.
    Object(Vec<(String, Value)>),
}

impl Value {
    /// An empty object `{}`.
    pub fn object() -> Value {
        Value::Object(Vec::new())
    }

    /// Parses JSON text (the whole input must be one value, surrounded by optional whitespace).
    pub fn parse(text: &str) -> Result<Value, ParseError> {
        parse(text)
    }

    /// The member `key` of an object (the last one if the key is repeated); `None` otherwise.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(members) => members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Sets `key` in an object (replacing every existing member of that name, keeping the
    /// position of the first); turns a non-object into an object first. Returns `self`.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<Value>) -> &mut Value {
        let key = key.into();
        let value = value.into();
        if !matches!(self, Value::Object(_)) {
            *self = Value::object();
        }
        if let Value::Object(members) = self {
            if let Some(i) = members.iter().position(|(k, _)| *k == key) {
                members[i].1 = value;
                let mut j = i + 1;
                while j < members.len() {
                    if members[j].0 == key {
                        members.remove(j);
                    } else {
                        j += 1;
                    }
                }
            } else {
                members.push((key, value));
            }
        }
        self
    }

    /// Builder form of [`Value::set`].
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Value {
        self.set(key, value);
        self
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Number(n) => n.as_i64(),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(n.as_f64()),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
    pub fn as_object(&self) -> Option<&[(String, Value)]> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// Compact JSON text (same as `to_string()`).
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        write_value(&mut out, self);
        out
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json())
    }
}

impl std::str::FromStr for Value {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Value, ParseError> {
        parse(s)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Number(Number::Int(i))
    }
}
impl From<i32> for Value {
    fn from(i: i32) -> Value {
        Value::Number(Number::Int(i64::from(i)))
    }
}
impl From<u32> for Value {
    fn from(i: u32) -> Value {
        Value::Number(Number::Int(i64::from(i)))
    }
}
impl From<f64> for Value {
    fn from(f: f64) -> Value {
        Value::Number(Number::Float(f))
    }
}
impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(s)
    }
}
impl From<Vec<Value>> for Value {
    fn from(a: Vec<Value>) -> Value {
        Value::Array(a)
    }
}
impl From<Vec<(String, Value)>> for Value {
    fn from(o: Vec<(String, Value)>) -> Value {
        Value::Object(o)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(o: Option<T>) -> Value {
        o.map_or(Value::Null, Into::into)
    }
}

// ---- Parsing ---------------------------------------------------------------------------------

/// Why JSON text did not parse, and where (a byte offset into the input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid JSON at byte {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Nesting deeper than this is rejected (it bounds the parser's recursion).
pub const MAX_DEPTH: usize = 512;

/// Parses JSON text; see [`Value::parse`].
pub fn parse(text: &str) -> Result<Value, ParseError> {
    let mut p = Parser { bytes: text.as_bytes(), pos: 0, depth: 0 };
    p.skip_ws();
    let v = p.value()?;
    p.skip_ws();
    if p.pos != p.bytes.len() {
        return Err(p.error("unexpected text after the value"));
    }
    Ok(v)
}

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn error(&self, message: &str) -> ParseError {
        ParseError { offset: self.pos, message: message.to_owned() }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn expect_literal(&mut self, literal: &str, value: Value) -> Result<Value, ParseError> {
        if self.bytes[self.pos..].starts_with(literal.as_bytes()) {
            self.pos += literal.len();
            Ok(value)
        } else {
            Err(self.error("invalid literal"))
        }
    }

    fn value(&mut self) -> Result<Value, ParseError> {
        match self.peek() {
            None => Err(self.error("unexpected end of input")),
            Some(b'n') => self.expect_literal("null", Value::Null),
            Some(b't') => self.expect_literal("true", Value::Bool(true)),
            Some(b'f') => self.expect_literal("false", Value::Bool(false)),
            Some(b'"') => Ok(Value::String(self.string()?)),
            Some(b'[') => self.array(),
            Some(b'{') => self.object(),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("expected a value")),
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        Ok(())
    }

    fn array(&mut self) -> Result<Value, ParseError> {
        self.enter()?;
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value()?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(Value::Array(items));
                }
                None => return Err(self.error("unterminated array")),
                Some(_) => return Err(self.error("expected ',' or ']'")),
            }
        }
    }

    fn object(&mut self) -> Result<Value, ParseError> {
        self.enter()?;
        self.pos += 1; // '{'
        let mut members = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.error(if self.peek().is_none() {
                    "unterminated object"
                } else {
                    "expected a string key"
                }));
            }
            let key = self.string()?;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(self.error("expected ':'"));
            }
            self.pos += 1;
            self.skip_ws();
            let value = self.value()?;
            members.push((key, value));
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(Value::Object(members));
                }
                None => return Err(self.error("unterminated object")),
                Some(_) => return Err(self.error("expected ',' or '}'")),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let digits = self.bytes.get(self.pos..self.pos + 4).ok_or_else(|| self.error("truncated \\u escape"))?;
        let mut v = 0u32;
        for &d in digits {
            let x = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => return Err(self.error("invalid hex digit in \\u escape")),
            };
            v = v * 16 + u32::from(x);
        }
        self.pos += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<String, ParseError> {
        self.pos += 1; // opening quote
        let mut out = String::new();
        loop {
            // Copy the run of plain characters at once. The input is a &str, so any run that
            // stops at an ASCII byte ends on a character boundary.
            let start = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            out.push_str(std::str::from_utf8(&self.bytes[start..self.pos]).expect("input is UTF-8"));
            match self.peek() {
                None => return Err(self.error("unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let esc = self.peek().ok_or_else(|| self.error("unterminated string"))?;
                    self.pos += 1;
                    match esc {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let at = self.pos - 2;
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                                    return Err(ParseError { offset: at, message: "lone high surrogate".into() });
                                }
                                self.pos += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(ParseError {
                                        offset: at,
                                        message: "high surrogate not followed by a low surrogate".into(),
                                    });
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else if (0xDC00..0xE000).contains(&hi) {
                                return Err(ParseError { offset: at, message: "lone low surrogate".into() });
                            } else {
                                hi
                            };
                            out.push(char::from_u32(code).expect("valid scalar value"));
                        }
                        _ => {
                            self.pos -= 1;
                            return Err(self.error("invalid escape"));
                        }
                    }
                }
                Some(_) => return Err(self.error("control character in string (must be escaped)")),
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(self.error("leading zero in number"));
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.error("expected a digit")),
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            integer = false;
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.error("expected a digit after '.'"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            integer = false;
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("expected a digit in the exponent"));
            }
        }
        let text = std::str::from_utf8(&self.bytes[start..self.pos]).expect("ASCII");
        if integer {
            if let Ok(i) = text.parse::<i64>() {
                return Ok(Value::Number(Number::Int(i)));
            }
        }
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Value::Number(Number::Float(f))),
            _ => Err(ParseError { offset: start, message: "number out of range".into() }),
        }
    }
}

// ---- Serialization ---------------------------------------------------------------------------

/// Appends `s` to `out` as a JSON string literal.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            out.push_str(&format!("\\u{b:04x}"));
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// `s` as a JSON string literal.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    write_string(&mut out, s);
    out
}

fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(Number::Int(i)) => out.push_str(&i.to_string()),
        Value::Number(Number::Float(f)) => {
            if f.is_finite() {
                // Debug gives the shortest text that reads back as the same double, always with
                // a '.' or an exponent (so it reads back as a float) — e.g. "3.0", "1e300", "1e-7".
                out.push_str(&format!("{f:?}"));
            } else {
                out.push_str("null");
            }
        }
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(members) => {
            out.push('{');
            for (i, (k, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, k);
                out.push(':');
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(text: &str) -> String {
        parse(text).unwrap_or_else(|e| panic!("{text}: {e}")).to_json()
    }

    #[test]
    fn scalars() {
        assert_eq!(parse("null").unwrap(), Value::Null);
        assert_eq!(parse(" true ").unwrap(), Value::Bool(true));
        assert_eq!(parse("false").unwrap(), Value::Bool(false));
        assert_eq!(parse("0").unwrap(), Value::Number(Number::Int(0)));
        assert_eq!(parse("-12").unwrap(), Value::Number(Number::Int(-12)));
        assert_eq!(parse("1.5").unwrap(), Value::Number(Number::Float(1.5)));
        assert_eq!(parse("-2.5e3").unwrap(), Value::Number(Number::Float(-2500.0)));
        assert_eq!(parse("1E2").unwrap(), Value::Number(Number::Float(100.0)));
        assert_eq!(parse("\"x\"").unwrap(), Value::String("x".into()));
    }

    #[test]
    fn integers_stay_exact() {
        for text in ["9223372036854775807", "-9223372036854775808", "9007199254740993", "1700000000123456"] {
            assert_eq!(rt(text), text);
            assert!(matches!(parse(text).unwrap(), Value::Number(Number::Int(_))));
        }
        // Out of i64 range: a float.
        assert!(matches!(parse("9223372036854775808").unwrap(), Value::Number(Number::Float(_))));
        assert_eq!(parse("3.0").unwrap().as_i64(), Some(3));
        assert_eq!(parse("3.5").unwrap().as_i64(), None);
    }

    #[test]
    fn floats_round_trip_as_floats() {
        for text in ["3.0", "0.1", "-0.0", "1e300", "1e-7", "123456.789", "2.2250738585072014e-308"] {
            let v = parse(text).unwrap();
            let back = parse(&v.to_json()).unwrap();
            assert_eq!(v, back, "{text} -> {}", v.to_json());
            assert!(matches!(back, Value::Number(Number::Float(_))));
        }
        assert_eq!(Value::from(f64::NAN).to_json(), "null");
        assert_eq!(Value::from(f64::INFINITY).to_json(), "null");
    }

    #[test]
    fn structures_round_trip_in_order() {
        let text = r#"{"z":1,"a":[true,false,null,{"k":"v"}],"m":{},"e":[],"d":-1.25}"#;
        assert_eq!(rt(text), text);
        let v = parse(text).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["z", "a", "m", "e", "d"]);
        assert_eq!(v.get("a").unwrap().as_array().unwrap().len(), 4);
        assert_eq!(rt(" [ 1 , [ ] , { } ] \n"), "[1,[],{}]");
    }

    #[test]
    fn duplicate_keys_get_returns_last_and_set_replaces() {
        let mut v = parse(r#"{"a":1,"b":2,"a":3}"#).unwrap();
        assert_eq!(v.get("a").unwrap().as_i64(), Some(3));
        v.set("a", "x");
        assert_eq!(v.to_json(), r#"{"a":"x","b":2}"#);
        v.set("c", Value::Null);
        assert_eq!(v.to_json(), r#"{"a":"x","b":2,"c":null}"#);
        assert_eq!(Value::object().with("k", 1).with("l", true).to_json(), r#"{"k":1,"l":true}"#);
    }

    #[test]
    fn escapes_decode() {
        let v = parse(r#""\"\\\/\b\f\n\r\t\u0041\u00e9\u4e2d""#).unwrap();
        assert_eq!(v.as_str().unwrap(), "\"\\/\u{8}\u{c}\n\r\tAé中");
        assert_eq!(parse(r#""\u0000""#).unwrap().as_str().unwrap(), "\0");
    }

    #[test]
    fn surrogate_pairs() {
        assert_eq!(parse(r#""\ud83c\udf0d""#).unwrap().as_str().unwrap(), "🌍");
        assert_eq!(parse(r#""\uD834\uDD1E x""#).unwrap().as_str().unwrap(), "𝄞 x");
        assert!(parse(r#""\ud83c""#).is_err());
        assert!(parse(r#""\ud83cx""#).is_err());
        assert!(parse(r#""\ud83c\u0041""#).is_err());
        assert!(parse(r#""\udf0d""#).is_err());
    }

    #[test]
    fn serializer_escapes() {
        let s = "q\"b\\s/\u{0}\u{1}\u{8}\u{c}\n\r\t\u{1f}\u{7f}é🌍";
        let text = quote(s);
        assert_eq!(text, "\"q\\\"b\\\\s/\\u0000\\u0001\\b\\f\\n\\r\\t\\u001f\u{7f}é🌍\"");
        assert_eq!(parse(&text).unwrap().as_str().unwrap(), s);
        // Keys are escaped too.
        let v = Value::object().with("a\"\n", "x");
        assert_eq!(v.to_json(), r#"{"a\"\n":"x"}"#);
        assert_eq!(parse(&v.to_json()).unwrap(), v);
    }

    #[test]
    fn every_control_character_round_trips() {
        let s: String = (0u32..0x80).filter_map(char::from_u32).collect();
        let text = quote(&s);
        assert!(!text.bytes().any(|b| b < 0x20));
        assert_eq!(parse(&text).unwrap().as_str().unwrap(), s);
    }

    #[test]
    fn unicode_passes_through() {
        let text = "{\"ключ\":\"日本語 عربى 🎉 e\u{301}\"}";
        assert_eq!(rt(text), text);
    }

    #[test]
    fn malformed_input_is_rejected() {
        let bad = [
            "",
            " ",
            "nul",
            "tru",
            "True",
            "01",
            "-",
            "1.",
            ".5",
            "1e",
            "1e+",
            "+1",
            "0x10",
            "NaN",
            "Infinity",
            "[1,]",
            "[1 2]",
            "[",
            "]",
            "{",
            "{\"a\"}",
            "{\"a\":}",
            "{a:1}",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{'a':1}",
            "\"abc",
            "\"\\x\"",
            "\"\\u12\"",
            "\"\\u12g4\"",
            "\"a\nb\"",
            "\"tab\there\"",
            "1 2",
            "{} x",
            "[]]",
            "1e400",
            "-1e400",
            "\"\\",
            "[1,[2,[3]]",
        ];
        for text in bad {
            assert!(parse(text).is_err(), "{text:?} should not parse");
        }
        let err = parse("[1, x]").unwrap_err();
        assert_eq!(err.offset, 4);
        assert!(err.to_string().contains("byte 4"), "{err}");
    }

    #[test]
    fn depth_is_limited() {
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse(&ok).is_ok());
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(parse(&deep).unwrap_err().message, "nesting too deep");
        let deep_obj = "{\"a\":".repeat(100_000);
        assert!(parse(&deep_obj).is_err());
    }

    #[test]
    fn accessors() {
        let v = parse(r#"{"s":"x","i":7,"f":0.5,"b":true,"n":null,"a":[1]}"#).unwrap();
        assert_eq!(v.get("s").and_then(Value::as_str), Some("x"));
        assert_eq!(v.get("i").and_then(Value::as_i64), Some(7));
        assert_eq!(v.get("i").and_then(Value::as_f64), Some(7.0));
        assert_eq!(v.get("f").and_then(Value::as_f64), Some(0.5));
        assert_eq!(v.get("b").and_then(Value::as_bool), Some(true));
        assert!(v.get("n").unwrap().is_null());
        assert!(v.get("missing").is_none());
        assert!(Value::Null.get("x").is_none());
        assert_eq!(v.get("a").and_then(Value::as_array).map(<[Value]>::len), Some(1));
        assert_eq!("[1]".parse::<Value>().unwrap(), Value::Array(vec![Value::from(1)]));
        assert_eq!(Value::from(None::<i64>), Value::Null);
        assert_eq!(format!("{}", Value::from("a\"b")), r#""a\"b""#);
    }
}
