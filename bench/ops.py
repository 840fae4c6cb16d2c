#!/usr/bin/env python3
"""Operations at scale: import, export and purge of a store of N messages through the installed
`convstate` command (run by bench/ops.sh, which builds it and starts the servers).

    ops.py CLI WORK_DIR URL... [--messages N] [--per-conversation K]

Writes one JSON Lines file of N messages (N/K conversations of K messages, 100 users, all last
updated in 2020), then per URL: `convstate import` of it into an empty database, `convstate
export` of everything, a second import into another empty database checked byte-identical
through its export, and `convstate purge --older-than 30d` of everything. Prints wall time,
messages per second and the command's peak RSS (getrusage of the child), and the peak RSS of the
same commands on a tenth of the data, to show that memory does not grow with the store (GNU
time's %M).
"""
import argparse
import filecmp
import json
import os
import tempfile
import subprocess
import sys
import time
import urllib.parse


def write_store(path, messages, per_conversation):
    """Exported lines, written the way the library writes them (json.dumps with no spaces)."""
    base_us = 1_577_836_800_000_000  # 2020-01-01
    conversations = messages // per_conversation
    with open(path, "w", encoding="utf-8") as f:
        for c in range(conversations):
            user = f"user-{c % 100:03d}"
            cid = f"00000000-0000-4000-8000-{c:012d}"
            msgs = []
            for s in range(1, per_conversation + 1):
                role = "user" if s % 2 else "assistant"
                msgs.append({"role": role, "content": f"message {s} of conversation {c}: " + "lorem ipsum " * 8,
                             "metadata": {}, "conversation_id": cid, "seq": s, "created_at_us": base_us + c * 1000 + s})
            conv = {"id": cid, "user_id": user, "title": f"conversation {c}", "metadata": {}, "last_seq": per_conversation,
                    "created_at_us": base_us + c * 1000, "updated_at_us": base_us + c * 1000 + per_conversation,
                    "external_key": None, "forked_from": None}
            line = {"version": 1, "conversation": conv, "create_key": None, "truncations": 0, "messages": msgs,
                    "summaries": [], "usage": []}
            f.write(json.dumps(line, separators=(",", ":"), ensure_ascii=False) + "\n")
    return conversations


def run(cli, url, args, stdin=None, stdout=None):
    """Runs one command; returns (seconds, its peak RSS in MiB). GNU time measures the RSS: a
    child forked from this Python process would count this process's pages in its own peak."""
    with tempfile.NamedTemporaryFile() as rss, tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss.name, cli, "--db", url, *args],
                           stdin=stdin or subprocess.DEVNULL, stdout=stdout or subprocess.DEVNULL, stderr=err)
        elapsed = time.monotonic() - t0
        if p.returncode != 0:
            err.seek(0)
            sys.exit(f"ops.py: convstate {' '.join(args)} on {url} failed ({p.returncode}): "
                     f"{err.read().decode(errors='replace')[-2000:]}")
        return elapsed, int(open(rss.name).read().split()[-1]) / 1024.0


def fresh_url(url, tag):
    """Each run's own empty database: a new SQLite file, or a new database on the server."""
    if url.startswith("sqlite3://"):
        path = f"{url[len('sqlite3://'):]}-{tag}.db"
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        return "sqlite3://" + path
    u = urllib.parse.urlsplit(url)
    sql = f"DROP DATABASE IF EXISTS {tag}; CREATE DATABASE {tag}"
    if u.scheme.startswith("postgres"):
        for statement in sql.split("; "):
            subprocess.run(["psql", "-q", "-X", url, "-c", statement], check=True, stdout=subprocess.DEVNULL,
                           env=dict(os.environ, PGOPTIONS="-c client_min_messages=warning"))
    else:
        subprocess.run(["mariadb", "--protocol=tcp", "-h", u.hostname, "-P", str(u.port), "-u", u.username,
                        f"-p{u.password}", "-e", sql], check=True)
    return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + tag, u.query, ""))


def measure(cli, url, store, n_messages, label, results):
    a, b = fresh_url(url, f"convstate_ops_a_{label}"), fresh_url(url, f"convstate_ops_b_{label}")
    for target in (a, b):
        run(cli, target, ["migrate"])
    with open(store, "rb") as f:
        t_import, rss_import = run(cli, a, ["import"], stdin=f)
    exported = store + f".{label}.export"
    with open(exported, "wb") as out:
        t_export, rss_export = run(cli, a, ["export"], stdout=out)
    with open(exported, "rb") as f:
        run(cli, b, ["import"], stdin=f)
    again = store + f".{label}.again"
    with open(again, "wb") as out:
        run(cli, b, ["export"], stdout=out)
    identical = filecmp.cmp(exported, again, shallow=False)
    t_purge, rss_purge = run(cli, a, ["purge", "--older-than", "30d"])
    left = json.loads(subprocess.run([cli, "--db", a, "status"], capture_output=True, check=True).stdout)
    for path in (exported, again):
        os.remove(path)
    results.append((label, n_messages, t_import, rss_import, t_export, rss_export, t_purge, rss_purge, identical,
                    left["messages"]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cli")
    ap.add_argument("work")
    ap.add_argument("urls", nargs="+", help="name=URL (each run creates its own database next to URL's)")
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--per-conversation", type=int, default=1000)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    small, big = os.path.join(a.work, "store-small.jsonl"), os.path.join(a.work, "store.jsonl")
    write_store(small, a.messages // 10, a.per_conversation)
    conversations = write_store(big, a.messages, a.per_conversation)
    print(f"# {a.messages} messages in {conversations} conversations of {a.per_conversation} "
          f"({os.path.getsize(big) / 2**20:.0f} MiB of JSON Lines); peak RSS of the convstate process")
    print(f"{'backend':10} {'messages':>9} {'import s':>9} {'msg/s':>8} {'RSS MiB':>8} {'export s':>9} {'msg/s':>8} "
          f"{'RSS MiB':>8} {'purge s':>8} {'msg/s':>8} {'RSS MiB':>8} round-trip left")
    for spec in a.urls:
        name, url = spec.split("=", 1)
        for label, store, n in ((f"{name}_small", small, a.messages // 10), (name, big, a.messages)):
            results = []
            measure(a.cli, url, store, n, label, results)
            (_, n, ti, ri, te, re_, tp, rp, same, left) = results[0]
            print(f"{name:10} {n:9} {ti:9.1f} {n / ti:8.0f} {ri:8.1f} {te:9.1f} {n / te:8.0f} {re_:8.1f} {tp:8.1f} "
                  f"{n / tp:8.0f} {rp:8.1f} {'identical' if same else 'DIFFERENT':9} {left}", flush=True)
    for path in (small, big):
        os.remove(path)


if __name__ == "__main__":
    main()
