//! chat_demo (Rust): a stateless chat on an embedded SQLite file (or any convstate URL).
//!
//! Every turn goes through `Database::turn`, which stores the user message, loads the history
//! from the database, runs the agent and stores its output. The process keeps nothing: run it
//! again with `--conversation ID` and the conversation continues.
//!
//!   chat_demo [--db URL] [--user ID] [--conversation ID] [--window N] [--message TEXT]...
//!
//! With --message (repeatable) it runs those turns and exits; otherwise it reads lines from
//! standard input ("/history" prints the stored conversation, "/quit" or end of input leaves).

mod agent;

use std::io::{BufRead, Write};
use std::process::ExitCode;

use convstate::{Database, Error, Role, ToolCall, TurnOptions, TurnResult, Window};

struct Args {
    db: String,
    user: String,
    conversation: Option<String>,
    window: u64, // 0: the whole history
    messages: Vec<String>,
}

const USAGE: &str = "usage: chat_demo [--db URL] [--user ID] [--conversation ID] [--window N] [--message TEXT]...
  --db URL            database (default sqlite3://convstate-demo.db)
  --user ID           the user chatting (default alice)
  --conversation ID   continue this conversation (default: start a new one)
  --window N          show the agent only the last N messages (default: all)
  --message TEXT      send TEXT (repeatable); without it, chat on standard input
  --help              print this help";

/// What the command line asked for.
enum Command {
    Run(Args),
    Help,
    Bad(String),
}

fn parse_args() -> Command {
    match parse_run_args() {
        Ok(Some(args)) => Command::Run(args),
        Ok(None) => Command::Help,
        Err(why) => Command::Bad(why),
    }
}

/// `Ok(None)` for --help; `Err` names the argument that is wrong.
fn parse_run_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        db: "sqlite3://convstate-demo.db".into(),
        user: "alice".into(),
        conversation: None,
        window: 0,
        messages: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Ok(None);
        }
        let known = ["--db", "--user", "--conversation", "--window", "--message"];
        if !known.contains(&flag.as_str()) {
            return Err(format!("unknown argument {flag}"));
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--db" => args.db = value,
            "--user" => args.user = value,
            "--conversation" => args.conversation = Some(value),
            "--window" => {
                args.window = value.parse().map_err(|_| format!("--window takes a whole number, not {value}"))?
            }
            _ => args.messages.push(value),
        }
    }
    Ok(Some(args))
}

/// Shows the agent loop (the messages stored between the user message and the reply), then the reply.
fn print_turn(db: &Database, user: &str, r: &TurnResult) -> Result<(), Error> {
    for m in db.load_after(user, &r.conversation_id, r.user_seq, 100)? {
        if m.seq >= r.reply_seq {
            break;
        }
        for c in &m.tool_calls {
            println!("  [tool call {}] {}({})", c.id, c.name, c.arguments);
        }
        if m.role == Role::Tool {
            println!("  [tool result {}] {}", m.tool_call_id.as_deref().unwrap_or(""), m.content);
        }
    }
    println!("assistant> {}", r.reply);
    Ok(())
}

fn run() -> Result<ExitCode, Error> {
    let mut args = match parse_args() {
        Command::Run(args) => args,
        Command::Help => {
            println!("{USAGE}");
            return Ok(ExitCode::SUCCESS);
        }
        Command::Bad(why) => {
            eprintln!("chat_demo: {why}\n{USAGE}");
            return Ok(ExitCode::from(2));
        }
    };
    let db = Database::open(&args.db)?;
    let window = (args.window > 0).then(|| Window::last(args.window));

    if let Some(id) = &args.conversation {
        // Fails with NotFound for a missing conversation or another user's.
        let c = db.get_conversation(&args.user, id)?;
        println!("conversation: {} ({} messages so far)", c.id, c.last_seq);
    }

    let turn = |args: &mut Args, text: &str| -> Result<(), Error> {
        let options = TurnOptions {
            conversation_id: args.conversation.clone(),
            title: Some(text.chars().take(60).collect()),
            window,
            ..TurnOptions::default()
        };
        let r = db.turn(&args.user, text, &options, agent::agent)?;
        if r.created {
            println!(
                "conversation: {} (new; continue it with --conversation {})",
                r.conversation_id, r.conversation_id
            );
            args.conversation = Some(r.conversation_id.clone());
        }
        println!("{}> {}", args.user, text);
        print_turn(&db, &args.user, &r)
    };

    if !args.messages.is_empty() {
        for m in std::mem::take(&mut args.messages) {
            turn(&mut args, &m)?;
        }
        return Ok(ExitCode::SUCCESS);
    }

    println!("chat_demo on {} as {} — type a message, /history, or /quit", args.db, args.user);
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        print!("{}> ", args.user);
        let _ = std::io::stdout().flush();
        let line = match lines.next() {
            Some(line) => line,
            None => break,
        };
        let line = line.map_err(|e| Error::Internal(format!("reading standard input: {e}")))?;
        match line.as_str() {
            "/quit" => break,
            "" => continue,
            "/history" => {
                let id = match &args.conversation {
                    Some(id) => id,
                    None => {
                        println!("(no conversation yet)");
                        continue;
                    }
                };
                for m in db.load_all(&args.user, id)? {
                    let text = if m.tool_calls.is_empty() {
                        m.content.clone()
                    } else {
                        ToolCall::list_to_json(&m.tool_calls).to_json()
                    };
                    println!("  #{} {}: {}", m.seq, m.role, text);
                }
            }
            text => turn(&mut args, text)?,
        }
    }
    println!();
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e @ Error::NotFound(_)) => {
            eprintln!("chat_demo: {e}");
            ExitCode::from(3)
        }
        Err(e) => {
            eprintln!("chat_demo: {e}");
            ExitCode::from(1)
        }
    }
}
