#!/usr/bin/env python3
"""The installed `convstate` command, on SQLite and on the test PostgreSQL and MariaDB.

    cli_test.py BUILD_DIR WORK_DIR

Installs BUILD_DIR into WORK_DIR/prefix and runs WORK_DIR/prefix/bin/convstate only (seeding
data through the Python binding over the installed libconvstate_c). Per backend: migrate and its
dry run, status, conversations, show, purge (dry run, per user, a recent conversation kept),
export | delete-user | import round-tripping byte for byte, a second import skipping everything,
a cross-backend import into SQLite, malformed lines reported by line number, usage errors (exit
2) and failures (exit 1), --help of every command and the man page. PostgreSQL and MariaDB come
from CONVSTATE_TEST_PG_URL / CONVSTATE_TEST_MARIADB_URL (scripts/test.sh starts them; required
when CONVSTATE_REQUIRE_PG / CONVSTATE_REQUIRE_MARIADB is 1).
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
COMMANDS = ["migrate", "status", "conversations", "show", "purge", "delete-user", "export", "import"]

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL", what)
    return cond


def main():
    build, work = sys.argv[1], sys.argv[2]
    shutil.rmtree(work, ignore_errors=True)
    prefix = os.path.join(work, "prefix")
    subprocess.run(["cmake", "--install", build, "--prefix", prefix], check=True, stdout=subprocess.DEVNULL)
    cli = os.path.join(prefix, "bin", "convstate")
    libs = glob.glob(os.path.join(prefix, "**", "libconvstate_c.so"), recursive=True)
    if not check(os.access(cli, os.X_OK) and libs, "the install holds bin/convstate and libconvstate_c.so"):
        return 1
    os.environ["CONVSTATE_LIBRARY"] = libs[0]
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "bindings", "python"))
    import convstate  # noqa: E402

    env = {k: v for k, v in os.environ.items() if k not in ("CONVSTATE_DATABASE_URL", "DATABASE_URL")}

    def run(*args, stdin=None, db=None, expect=0):
        e = dict(env)
        if db:
            e["CONVSTATE_DATABASE_URL"] = db
        p = subprocess.run([cli, *args], input=stdin, capture_output=True, text=True, env=e)
        check(p.returncode == expect, f"convstate {' '.join(args)}: exit {p.returncode}, expected {expect}; stderr: {p.stderr.strip()}")
        return p

    def records(p):
        return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]

    # Help, version, the man page and usage errors need no database.
    p = run("--help")
    check(p.stdout.startswith("Usage: convstate") and all(c in p.stdout for c in COMMANDS), "--help lists every command")
    for c in COMMANDS:
        check(run(c, "--help").stdout.startswith(f"Usage: convstate {c}"), f"{c} --help")
    check(run("--version").stdout.startswith("convstate "), "--version")
    man = os.path.join(prefix, "share", "man", "man1", "convstate.1")
    check(os.path.exists(man) and "convstate" in open(man, encoding="utf-8").read(), "the man page is installed")
    check("no database" in run("status", expect=2).stderr, "no URL: a usage error naming the fix")
    check("unknown command" in run("frobnicate", expect=2).stderr, "unknown command: exit 2")
    check("unknown option" in run("status", "--frob", db="sqlite3://x.db", expect=2).stderr, "unknown option: exit 2")
    check("--older-than" in run("purge", db="sqlite3://x.db", expect=2).stderr, "purge needs --older-than")
    check("not a duration" in run("purge", "--older-than", "5x", db="sqlite3://x.db", expect=2).stderr, "bad duration")

    backends = [("sqlite", "sqlite3://" + os.path.join(work, "cli.db"))]
    for name, var, required in (("postgres", "CONVSTATE_TEST_PG_URL", "CONVSTATE_REQUIRE_PG"),
                                ("mariadb", "CONVSTATE_TEST_MARIADB_URL", "CONVSTATE_REQUIRE_MARIADB")):
        if os.environ.get(var):
            backends.append((name, os.environ[var]))
        elif os.environ.get(required) == "1":
            check(False, f"{var} is not set")
    for name, url in backends:
        print(f"cli: {name}")
        backend(run, records, convstate, name, url, work)

    print(f"cli: {len(failures)} failures")
    return 1 if failures else 0


def dry_latest(run, records, url):
    """The library's latest schema version, as `migrate --dry-run` reports it."""
    return records(run("migrate", "--dry-run", db=url))[0]["latest"]


def backend(run, records, convstate, name, url, work):
    if name == "sqlite":
        # A new file: everything pending, no counts before the schema exists.
        dry = records(run("migrate", "--dry-run", db=url))[0]
        check(dry["schema_version"] == 0 and dry["pending"] == list(range(1, dry["latest"] + 1)), f"{name}: dry run {dry}")
        check("users" not in records(run("status", db=url))[0], f"{name}: status before migrating")
    migrated = records(run("migrate", db=url))[0]
    check(migrated["schema_version"] == dry_latest(run, records, url), f"{name}: migrate {migrated}")
    check(records(run("migrate", "--dry-run", db=url))[0]["pending"] == [], f"{name}: nothing pending after migrate")

    user = f"cli-{name}-{uuid.uuid4().hex[:8]}"
    db = convstate.Database(url)
    old = db.create_conversation(user, "old")["id"]
    db.append(user, old, {"role": "user", "content": "stale"})
    time.sleep(3)
    first = db.turn(user, "hello ☃", lambda h, u, c: {"content": "hi 😀", "usage": {"model": "m", "prompt_tokens": 5}},
                    idempotency_key="k1", title="Ünïcode")
    a = first["conversation_id"]
    db.append_batch(user, a, [
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{ \"x\": 1.50 }"}}]},
        {"role": "tool", "content": "42", "tool_call_id": "c1", "metadata": {"n": 0.1}},
        {"role": "user", "content": "more\n\"quoted\"", "idempotency_key": "m-1"},
    ])
    db.add_summary(user, a, 2, "the greeting")
    b = db.create_conversation(user, "second", metadata={"k": [1, 2.5, None]})["id"]

    status = records(run("status", db=url))[0]
    check(status["backend"] in ("sqlite", "postgresql", "mysql") and status["conversations"] >= 3
          and status["messages"] >= 6 and status["users"] >= 1, f"{name}: status {status}")

    listed = records(run("conversations", user, db=url))
    check([c["id"] for c in listed] == [b, a, old], f"{name}: conversations, most recent first: {listed}")
    check(len(records(run("conversations", user, "--limit", "1", db=url))) == 1, f"{name}: conversations --limit")
    shown = records(run("show", user, a, db=url))
    check([m["seq"] for m in shown] == [1, 2, 3, 4, 5] and shown[0]["content"] == "hello ☃", f"{name}: show {shown}")
    check([m["seq"] for m in records(run("show", user, a, "--after", "2", "--limit", "2", db=url))] == [3, 4],
          f"{name}: show --after --limit")
    check("not found" in run("show", user, "no-such-id", db=url, expect=1).stderr, f"{name}: show of a missing one")
    check("--limit" in run("show", user, a, "--limit", "0", db=url, expect=2).stderr, f"{name}: --limit 0")

    # Purge: only the conversation idle for more than 2 s goes; a dry run first.
    dry = records(run("purge", "--older-than", "2s", "--user", user, "--dry-run", db=url))[0]
    check(dry == {"conversations": 1, "messages": 1, "dry_run": True}, f"{name}: purge --dry-run {dry}")
    check(len(records(run("conversations", user, db=url))) == 3, f"{name}: a dry run deletes nothing")
    done = records(run("purge", "--older-than", "2s", "--user", user, "--batch", "1", db=url))[0]
    check(done == {"conversations": 1, "messages": 1, "dry_run": False}, f"{name}: purge {done}")
    check([c["id"] for c in records(run("conversations", user, db=url))] == [b, a], f"{name}: purge kept the recent ones")

    # export | delete-user | import, byte for byte; a second import skips everything.
    exported = run("export", "--user", user, db=url).stdout
    check(len(exported.splitlines()) == 2, f"{name}: export wrote {len(exported.splitlines())} lines")
    check(records(run("delete-user", user, db=url))[0] == {"conversations": 2}, f"{name}: delete-user")
    check(records(run("conversations", user, db=url)) == [], f"{name}: nothing left after delete-user")
    path = os.path.join(work, f"{name}.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        f.write(exported)
    imported = records(run("import", path, db=url))[0]
    check(imported == {"lines": 2, "imported": 2, "skipped": 0, "failed": 0, "messages": 5}, f"{name}: import {imported}")
    again = records(run("import", stdin=exported, db=url))[0]
    check(again["imported"] == 0 and again["skipped"] == 2, f"{name}: a second import {again}")
    check(run("export", "--user", user, db=url).stdout == exported, f"{name}: export after import is byte-identical")
    replay = db.turn(user, "hello ☃", lambda h, u, c: "never", idempotency_key="k1")
    check(replay.get("replayed") and replay["conversation_id"] == a, f"{name}: the keyed turn replays after import")
    check(run("export", "--user", user, "--since", "1d", db=url).stdout == exported, f"{name}: export --since 1d")
    check(run("export", "--user", user, "--since", str(2**62), db=url).stdout == "", f"{name}: export --since the future")

    # Into another backend (a new SQLite file) and out again: the same bytes.
    other = "sqlite3://" + os.path.join(work, f"from-{name}.db")
    run("migrate", db=other)
    run("import", stdin=exported, db=other)
    check(run("export", db=other).stdout == exported, f"{name}: exported, imported into SQLite, exported again: same")

    # Malformed lines: reported by number, nothing of them written, the rest imported; exit 1.
    parsed = [json.loads(line) for line in exported.splitlines()]
    broken = next(c for c in parsed if c["messages"])
    broken["messages"][0]["role"] = "robot"
    broken["conversation"]["user_id"] = user + "-broken"
    fresh = next(c for c in parsed if not c["messages"])
    fresh["conversation"]["user_id"] = user + "-fresh"
    text = "\n".join([json.dumps(fresh), json.dumps(broken), "{not json", ""]) + "\n"
    p = run("import", stdin=text, db=url, expect=1)
    out = records(p)[0]
    check(out["imported"] == 1 and out["failed"] == 2, f"{name}: import of a file with bad lines {out}")
    check("line 2: invalid messages[0].role" in p.stderr and "line 3: invalid json" in p.stderr,
          f"{name}: bad lines named by number and field: {p.stderr}")
    check(records(run("conversations", user + "-broken", db=url)) == [], f"{name}: nothing of a bad line written")
    check(len(records(run("conversations", user + "-fresh", db=url))) == 1, f"{name}: the good line was imported")

    for u in (user, user + "-fresh"):
        db.delete_all(u)
    db.close()


if __name__ == "__main__":
    sys.exit(main())
