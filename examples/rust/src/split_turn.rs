//! split_turn (Rust): the turn in two calls, with the model running elsewhere meanwhile.
//!
//! `Database::begin_turn` stores the user message and returns the window with a turn token;
//! the "model" runs on another thread (where an async runtime would await an HTTP call) and
//! streams its reply back in pieces, which are printed as they come; `Database::complete_turn`
//! then stores the reply — here from a second handle on the database, as another server
//! instance would. No connection is held and no thread is blocked on the database while the
//! model runs.
//!
//!   split_turn [--db URL] [--user ID] MESSAGE...

#[path = "agent.rs"]
mod agent;

use std::process::ExitCode;
use std::sync::mpsc;

use convstate::{AgentReply, Database, Error, TurnOptions};

const USAGE: &str = "usage: split_turn [--db URL] [--user ID] MESSAGE...
  --db URL    database (default sqlite3://convstate-split.db)
  --user ID   the user chatting (default alice)
Runs one split turn per MESSAGE in one conversation and prints the streamed replies.";

fn run(url: &str, user: &str, messages: &[String]) -> Result<(), Error> {
    let db = Database::open(url)?;
    let finisher = Database::open(url)?; // another instance, for the second half
    let mut conversation: Option<String> = None;
    for message in messages {
        let options = conversation.clone().map(TurnOptions::in_conversation).unwrap_or_default();
        let turn = db.begin_turn(user, message, &options)?;
        println!("you [{}]: {message}", turn.user_seq);
        let token = turn.token.clone().expect("a fresh turn has a token");

        // The model, elsewhere: it sends its reply in pieces, then the whole reply.
        let (pieces, received) = mpsc::channel::<Result<String, String>>();
        let history = turn.history.clone();
        let model = std::thread::spawn(move || -> Result<AgentReply, String> {
            let reply = agent::agent(&history, "", "")?;
            for piece in reply.content.as_bytes().chunks(8) {
                let _ = pieces.send(Ok(String::from_utf8_lossy(piece).into_owned()));
            }
            Ok(reply)
        });
        print!("assistant: ");
        for piece in received.into_iter().flatten() {
            print!("{piece}");
        }
        println!();
        match model.join().expect("the model thread") {
            Ok(reply) => {
                let stored = finisher.complete_turn(user, &token, &reply)?;
                println!("  (stored as seq {}, conversation {})", stored.reply_seq, stored.conversation_id);
                conversation = Some(stored.conversation_id);
            }
            Err(why) => {
                finisher.fail_turn(user, &token, Some(&why))?;
                println!("  (the model failed: {why}; the user message stays)");
                conversation = Some(turn.conversation_id);
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let mut url = "sqlite3://convstate-split.db".to_owned();
    let mut user = "alice".to_owned();
    let mut messages = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = |args: &mut dyn Iterator<Item = String>| args.next();
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "--db" | "--user" => match value(&mut args) {
                Some(v) if arg == "--db" => url = v,
                Some(v) => user = v,
                None => {
                    eprintln!("split_turn: {arg} needs a value\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            a if a.starts_with('-') => {
                eprintln!("split_turn: unknown option {a}\n{USAGE}");
                return ExitCode::from(2);
            }
            _ => messages.push(arg),
        }
    }
    if messages.is_empty() {
        eprintln!("split_turn: no MESSAGE\n{USAGE}");
        return ExitCode::from(2);
    }
    match run(&url, &user, &messages) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("split_turn: {e}");
            ExitCode::FAILURE
        }
    }
}
