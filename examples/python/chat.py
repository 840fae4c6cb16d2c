#!/usr/bin/env python3
"""chat.py: a stateless chat on an embedded SQLite file (or any convstate URL), in Python.

The Python twin of examples/chat_demo.cpp. Every turn goes through Database.turn, which stores
the user message, loads the history from the database, runs the agent and stores its output.
The process keeps nothing: run it again with --conversation ID and the conversation continues.

    chat.py [--db PATH_OR_URL] [--user ID] [--conversation ID] [--window N] [--message TEXT]...

With --message (repeatable) it runs those turns and exits; otherwise it reads lines from
standard input ("/history" prints the stored conversation, "/quit" or end of input leaves).

The agent is deterministic and needs no model or network: a calculator tool for arithmetic
(a small recursive-descent parser, never eval), a UTC clock tool for "time", otherwise an
echo that quotes what you said before — from the history it is given, not from memory.

Needs the native library: CONVSTATE_LIBRARY=/path/to/libconvstate_c.so (or an installed one),
and the package (pip install ./bindings/python, or run from the source tree as is).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys

try:
    import convstate
except ImportError:  # run from the source tree without installing
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bindings", "python"))
    import convstate


# ---------------------------------------------------------------------------------------------
# The demo agent (a port of examples/demo_agent.hpp)


class CalculatorError(ValueError):
    pass


class Calculator:
    """expression := term (('+'|'-') term)*; term := factor (('*'|'/') factor)*;
    factor := number | '(' expression ')' | '-' factor"""

    MAX_DEPTH = 200

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0

    @classmethod
    def evaluate(cls, text: str) -> float:
        c = cls(text)
        value = c.expression()
        c.skip()
        if c.pos != len(text):
            raise CalculatorError(f"unexpected '{text[c.pos]}'")
        return value

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] == " ":
            self.pos += 1

    def eat(self, ch: str) -> bool:
        self.skip()
        if self.pos < len(self.text) and self.text[self.pos] == ch:
            self.pos += 1
            return True
        return False

    def expression(self) -> float:
        value = self.term()
        while True:
            if self.eat("+"):
                value += self.term()
            elif self.eat("-"):
                value -= self.term()
            else:
                return value

    def term(self) -> float:
        value = self.factor()
        while True:
            if self.eat("*"):
                value *= self.factor()
            elif self.eat("/"):
                divisor = self.factor()
                if divisor == 0:
                    raise CalculatorError("division by zero")
                value /= divisor
            else:
                return value

    def factor(self) -> float:
        self.depth += 1
        if self.depth > self.MAX_DEPTH:
            raise CalculatorError("expression nested too deeply")
        try:
            if self.eat("-"):
                return -self.factor()
            if self.eat("("):
                value = self.expression()
                if not self.eat(")"):
                    raise CalculatorError("missing ')'")
                return value
            self.skip()
            start = self.pos
            while self.pos < len(self.text) and (self.text[self.pos].isdigit() or self.text[self.pos] == "."):
                self.pos += 1
            if start == self.pos:
                raise CalculatorError("expected a number")
            try:
                return float(self.text[start:self.pos])
            except ValueError:
                raise CalculatorError(f"bad number '{self.text[start:self.pos]}'") from None
        finally:
            self.depth -= 1


_EXPRESSION_CHARS = set("0123456789+-*/(). ")


def find_expression(text: str) -> str:
    """The longest run of "0-9 + - * / ( ) . space" holding a digit and an operator."""
    best, run = "", []

    def consider() -> None:
        nonlocal best
        s = "".join(run)
        if any(c.isdigit() for c in s) and any(c in "+-*/" for c in s):
            s = s.strip(" ")
            if len(s) > len(best):
                best = s
        run.clear()

    for ch in text:
        if ch in _EXPRESSION_CHARS:
            run.append(ch)
        else:
            consider()
    consider()
    return best


def format_number(v: float) -> str:
    if math.isfinite(v) and abs(v - round(v)) < 1e-9 and abs(v) < 1e15:
        return f"{v:.0f}"
    return f"{v:.6g}"


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def demo_agent(history: list[dict], user_id: str, conversation_id: str) -> dict:
    """One tool round when the message asks for arithmetic or the time, then a reply. It answers
    from the history it is given (it keeps nothing itself)."""
    said = history[-1]
    user_messages = [m for m in history if m["role"] == "user"]
    previous = next((m["content"] for m in reversed(history[:-1]) if m["role"] == "user"), "")
    reply: dict = {}

    def call_tool(name: str, arguments: dict, result: str) -> None:
        call_id = f"call_{said['seq']}"
        call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments, separators=(",", ":"))}}
        reply["intermediate"] = [
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "name": name, "tool_call_id": call_id, "content": result},
        ]

    expression = find_expression(said["content"])
    if expression:
        try:
            result = format_number(Calculator.evaluate(expression))
        except (CalculatorError, OverflowError) as e:
            result = f"error: {e}"
        call_tool("calculator", {"expression": expression}, result)
        reply["content"] = f"{expression} = {result}"
    elif "time" in said["content"].lower():
        now = utc_now()
        call_tool("clock", {"timezone": "UTC"}, now)
        reply["content"] = f"It is {now} (UTC)."
    elif not previous:
        reply["content"] = (
            'Hello! Ask me to compute something ("what is 6*7?") or for the time. I remember what you say.'
        )
    else:
        reply["content"] = (
            f'You said "{said["content"]}". Before that you said "{previous}" '
            f"({len(user_messages)} messages from you so far)."
        )
    return reply


# ---------------------------------------------------------------------------------------------
# The program


def to_url(db: str) -> str:
    """A convstate URL as is; a plain file path becomes sqlite3:///absolute/path."""
    if "://" in db:
        return db
    return "sqlite3://" + os.path.abspath(db)


def print_turn(db: convstate.Database, user: str, r: dict) -> None:
    # Show the agent loop: the messages stored between the user message and the reply.
    for m in db.load_after(user, r["conversation_id"], r["user_seq"], 100):
        if m["seq"] >= r["reply_seq"]:
            break
        for c in m.get("tool_calls", []):
            print(f"  [tool call {c['id']}] {c['function']['name']}({c['function']['arguments']})")
        if m["role"] == "tool":
            print(f"  [tool result {m.get('tool_call_id', '')}] {m['content']}")
    print(f"assistant> {r['reply']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A stateless chat on convstate (Python).")
    parser.add_argument("--db", default="convstate-demo.db", help="SQLite file or convstate URL (default: %(default)s)")
    parser.add_argument("--user", default="alice", help="user id (default: %(default)s)")
    parser.add_argument("--conversation", help="continue this conversation")
    parser.add_argument("--window", type=int, default=0, help="show the agent only the last N messages")
    parser.add_argument("--message", action="append", default=[], help="run this turn (repeatable) and exit")
    args = parser.parse_args(argv)

    try:
        with convstate.Database(to_url(args.db)) as db:
            conversation = args.conversation
            window = {"kind": "last", "max_messages": args.window} if args.window > 0 else None
            if conversation:
                # NotFound for a missing conversation or another user's.
                c = db.get_conversation(args.user, conversation)
                print(f"conversation: {c['id']} ({c['last_seq']} messages so far)")

            def run(text: str, echo: bool = True) -> None:
                nonlocal conversation
                r = db.turn(args.user, text, demo_agent, conversation_id=conversation, title=text[:60], window=window)
                if r["created"]:
                    conversation = r["conversation_id"]
                    print(f"conversation: {conversation} (new; continue it with --conversation {conversation})")
                if echo:  # interactive input is on the screen already
                    print(f"{args.user}> {text}")
                print_turn(db, args.user, r)

            if args.message:
                for text in args.message:
                    run(text)
                return 0

            print(f"chat.py on {args.db} as {args.user} — type a message, /history, or /quit")
            while True:
                try:
                    line = input(f"{args.user}> ")
                except EOFError:
                    print()
                    return 0
                if line == "/quit":
                    return 0
                if not line:
                    continue
                if line == "/history":
                    if not conversation:
                        print("(no conversation yet)")
                        continue
                    for m in db.load_all(args.user, conversation):
                        shown = json.dumps(m["tool_calls"]) if m.get("tool_calls") else m["content"]
                        print(f"  #{m['seq']} {m['role']}: {shown}")
                    continue
                try:
                    run(line, echo=False)
                except convstate.AgentError as e:  # the user message is stored; keep chatting
                    print(f"(the agent failed: {e})")
    except convstate.NotFound as e:
        print(f"chat.py: {e}", file=sys.stderr)
        return 3
    except (convstate.ConvstateError, convstate.LibraryError) as e:
        print(f"chat.py: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print()
        return 130


if __name__ == "__main__":
    sys.exit(main())
