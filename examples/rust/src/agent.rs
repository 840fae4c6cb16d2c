//! A deterministic demo agent with two real local tools (a calculator and a UTC clock), so the
//! chat demo shows tool calls and tool results without any model or network. A port of
//! examples/demo_agent.hpp.

use std::time::{SystemTime, UNIX_EPOCH};

use convstate::{AgentReply, Message, Role, ToolCall};

/// expression := term (('+'|'-') term)*; term := factor (('*'|'/') factor)*;
/// factor := number | '(' expression ')' | '-' factor
pub struct Calculator<'a> {
    text: &'a [u8],
    pos: usize,
}

impl<'a> Calculator<'a> {
    pub fn evaluate(text: &str) -> Result<f64, String> {
        let mut c = Calculator { text: text.as_bytes(), pos: 0 };
        let v = c.expression()?;
        c.skip();
        if c.pos != c.text.len() {
            return Err(format!("unexpected '{}'", c.text[c.pos] as char));
        }
        Ok(v)
    }

    fn skip(&mut self) {
        while self.text.get(self.pos) == Some(&b' ') {
            self.pos += 1;
        }
    }

    fn eat(&mut self, ch: u8) -> bool {
        self.skip();
        if self.text.get(self.pos) == Some(&ch) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expression(&mut self) -> Result<f64, String> {
        let mut v = self.term()?;
        loop {
            if self.eat(b'+') {
                v += self.term()?;
            } else if self.eat(b'-') {
                v -= self.term()?;
            } else {
                return Ok(v);
            }
        }
    }

    fn term(&mut self) -> Result<f64, String> {
        let mut v = self.factor()?;
        loop {
            if self.eat(b'*') {
                v *= self.factor()?;
            } else if self.eat(b'/') {
                let d = self.factor()?;
                if d == 0.0 {
                    return Err("division by zero".into());
                }
                v /= d;
            } else {
                return Ok(v);
            }
        }
    }

    fn factor(&mut self) -> Result<f64, String> {
        if self.eat(b'-') {
            return Ok(-self.factor()?);
        }
        if self.eat(b'(') {
            let v = self.expression()?;
            if !self.eat(b')') {
                return Err("missing ')'".into());
            }
            return Ok(v);
        }
        self.skip();
        let start = self.pos;
        while matches!(self.text.get(self.pos), Some(b'0'..=b'9' | b'.')) {
            self.pos += 1;
        }
        if start == self.pos {
            return Err("expected a number".into());
        }
        let number = std::str::from_utf8(&self.text[start..self.pos]).expect("ASCII");
        number.parse::<f64>().map_err(|_| format!("'{number}' is not a number"))
    }
}

/// The longest run of "0-9 + - * / ( ) . space" holding a digit and an operator.
pub fn find_expression(text: &str) -> String {
    const ALLOWED: &str = "0123456789+-*/(). ";
    let mut best = String::new();
    let mut run = String::new();
    let mut consider = |run: &mut String| {
        let digit = run.chars().any(|c| c.is_ascii_digit());
        let op = run.chars().any(|c| "+-*/".contains(c));
        let trimmed = run.trim_matches(' ');
        if digit && op && trimmed.len() > best.len() {
            best = trimmed.to_owned();
        }
        run.clear();
    };
    for ch in text.chars() {
        if ALLOWED.contains(ch) {
            run.push(ch);
        } else {
            consider(&mut run);
        }
    }
    consider(&mut run);
    best
}

/// Like printf's "%.0f" for integral values below 1e15, else "%.6g".
pub fn format_number(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 && v.abs() < 1e15 {
        return format!("{v:.0}");
    }
    format_g6(v)
}

/// printf("%.6g").
fn format_g6(v: f64) -> String {
    if !v.is_finite() {
        return if v.is_nan() {
            "nan".into()
        } else if v > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    // The exponent after rounding to 6 significant digits decides the style.
    let sci = format!("{v:.5e}"); // d.ddddde±x
    let (mantissa, exp) = sci.split_once('e').expect("exponent");
    let exp: i32 = exp.parse().expect("exponent digits");
    let strip = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s.to_owned()
        }
    };
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", strip(mantissa), exp.abs())
    } else {
        let decimals = usize::try_from(5 - exp).unwrap_or(0);
        strip(&format!("{v:.decimals$}"))
    }
}

/// The current UTC time as "YYYY-MM-DDTHH:MM:SSZ".
pub fn utc_now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    format_utc(secs)
}

fn format_utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// The agent: one tool round when the message asks for arithmetic or the time, then a reply.
/// It answers from the history it is given (it keeps nothing itself).
pub fn agent(history: &[Message], _user_id: &str, _conversation_id: &str) -> Result<AgentReply, String> {
    let said = history.last().ok_or("empty history")?;
    let users: Vec<&Message> = history.iter().filter(|m| m.role == Role::User).collect();
    let user_turns = users.len();
    let previous = users.iter().rev().find(|m| !std::ptr::eq(**m, said)).map(|m| m.content.as_str()).unwrap_or("");

    let mut reply = AgentReply::default();
    let mut call_tool = |name: &str, arguments: String, result: String| {
        let call = ToolCall::new(format!("call_{}", said.seq), name, arguments);
        let answer = Message::tool(call.id.clone(), result).with_name(name);
        reply.intermediate = vec![Message::assistant_tool_calls(vec![call]), answer];
    };

    let expr = find_expression(&said.content);
    let content = if !expr.is_empty() {
        let result = match Calculator::evaluate(&expr) {
            Ok(v) => format_number(v),
            Err(e) => format!("error: {e}"),
        };
        let arguments = format!("{{\"expression\":{}}}", convstate::json::quote(&expr));
        call_tool("calculator", arguments, result.clone());
        format!("{expr} = {result}")
    } else if said.content.to_lowercase().contains("time") {
        let now = utc_now();
        call_tool("clock", "{\"timezone\":\"UTC\"}".into(), now.clone());
        format!("It is {now} (UTC).")
    } else if previous.is_empty() {
        "Hello! Ask me to compute something (\"what is 6*7?\") or for the time. I remember what you say.".into()
    } else {
        format!(
            "You said \"{}\". Before that you said \"{previous}\" ({user_turns} messages from you so far).",
            said.content
        )
    };
    reply.content = content;
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calculator() {
        assert_eq!(Calculator::evaluate("12*(3+4) - 2"), Ok(82.0));
        assert_eq!(Calculator::evaluate("-(2+3)*-2"), Ok(10.0));
        assert_eq!(Calculator::evaluate("7/2"), Ok(3.5));
        assert_eq!(Calculator::evaluate("1/0"), Err("division by zero".into()));
        assert_eq!(Calculator::evaluate("(1+2"), Err("missing ')'".into()));
        assert_eq!(Calculator::evaluate("1+"), Err("expected a number".into()));
        assert_eq!(Calculator::evaluate("2 3"), Err("unexpected '3'".into()));
    }

    #[test]
    fn expressions_in_text() {
        assert_eq!(find_expression("What is 12*(3+4) - 2?"), "12*(3+4) - 2");
        assert_eq!(find_expression("what is 6*7?"), "6*7");
        assert_eq!(find_expression("in 2024 we met"), "");
        assert_eq!(find_expression("Hello!"), "");
    }

    #[test]
    fn numbers_format_like_printf() {
        assert_eq!(format_number(42.0), "42");
        assert_eq!(format_number(-3.0), "-3");
        assert_eq!(format_number(3.5), "3.5");
        assert_eq!(format_number(1.0 / 3.0), "0.333333");
        assert_eq!(format_number(2.0 / 3.0 * 1e6), "666667");
        assert_eq!(format_number(1e20), "1e+20");
        assert_eq!(format_number(1.5e-7), "1.5e-07");
        assert_eq!(format_number(123456.5), "123456"); // %.6g rounds half to even here, like printf
        assert_eq!(format_number(0.0001), "0.0001");
    }

    #[test]
    fn utc_dates() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(utc_now().len(), 20);
    }

    #[test]
    fn agent_behaviour() {
        let mut said = Message::user("what is 6*7?");
        said.seq = 3;
        let r = agent(&[Message::user("hi"), Message::assistant("Hello!"), said], "u", "c").unwrap();
        assert_eq!(r.content, "6*7 = 42");
        assert_eq!(r.intermediate.len(), 2);
        assert_eq!(r.intermediate[0].tool_calls[0], ToolCall::new("call_3", "calculator", r#"{"expression":"6*7"}"#));
        assert_eq!(r.intermediate[1].tool_call_id.as_deref(), Some("call_3"));

        let r = agent(&[Message::user("Hello!")], "u", "c").unwrap();
        assert!(r.content.starts_with("Hello!"));
        let r = agent(&[Message::user("first"), Message::assistant("x"), Message::user("second")], "u", "c").unwrap();
        assert_eq!(r.content, "You said \"second\". Before that you said \"first\" (2 messages from you so far).");
        let r = agent(&[Message::user("What TIME is it")], "u", "c").unwrap();
        assert!(r.content.starts_with("It is ") && r.intermediate[0].tool_calls[0].name == "clock");
    }
}
