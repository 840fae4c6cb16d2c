#!/usr/bin/env python3
"""Prints the README's benchmark table (Markdown) from bench/run.sh result files.

    bench/table.py [FILE...]      default: bench/results/latest.txt
    bench/table.py bench/results/latest.txt bench/results/mariadb.txt

Every figure comes from the files: the medians of the result lines, and the ratio lines (the
median of the ratios measured within each run). Several files are merged; a line of a later
file replaces the same line (impl, backend, scenario) of an earlier one. A scenario the files
do not hold prints "—".
"""
import sys

BACKENDS = ("sqlite", "postgres", "mariadb")


def fields(line):
    out = {}
    for word in line.split():
        if "=" in word:
            key, _, value = word.partition("=")
            out[key] = value
    return out


def load(paths):
    results, ratios, notes = {}, {}, {}
    for path in paths:
        load_into(path, results, ratios, notes)
    return results, ratios, notes


def load_into(path, results, ratios, notes):
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.strip()
            if line.startswith("impl="):
                d = fields(line)
                results[(d["impl"], d["backend"], d["scenario"])] = d
            elif line.startswith("ratio=convstate/raw"):
                d = fields(line)
                ratios[(d["backend"], d["scenario"])] = d
            elif line.startswith("# wal_sync"):
                d = fields(line[1:])
                notes[("wal_sync", d["impl"], d["backend"], d["scenario"])] = d["wal_sync_per_turn"]


def number(value, digits):
    x = float(value)
    return f"{x:,.{digits}f}"


def main():
    paths = sys.argv[1:] or ["bench/results/latest.txt"]
    results, ratios, notes = load(paths)

    def cell(impl, backend, scenario, key, digits=0):
        d = results.get((impl, backend, scenario))
        return number(d[key], digits) if d and key in d else "—"

    def ratio(backend, scenario, key="turns_per_s"):
        d = ratios.get((backend, scenario))
        return number(d[key], 2) if d and key in d else "—"

    rows = [
        ("S1 many short chats, turns/s", "S1", "turns_per_s", 0),
        ("S2 long chat, full history, turns/s", "S2-full", "turns_per_s", 0),
        ("S2 long chat, full history, last 50 turns, ms", "S2-full", "late_ms", 2),
        ("S2 long chat, last-50 window, turns/s", "S2-last50", "turns_per_s", 0),
        ("S3 8 clients, turns/s", "S3", "turns_per_s", 0),
        ("S4 8 clients on one conversation, turns/s", "S4", "turns_per_s", 0),
        ("S5 last 50 of 1,000,000 messages, loads/s", "S5-big", "turns_per_s", 0),
        ("S5 last 50 of 1,000 messages, loads/s", "S5-small", "turns_per_s", 0),
        ("S6 database 0.25 ms away, turns/s", "S6", "turns_per_s", 1),
    ]
    print("| scenario | SQLite convstate | SQLite floor | ratio | PostgreSQL convstate | PostgreSQL floor | ratio "
          "| MariaDB convstate | MariaDB floor | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, scenario, key, digits in rows:
        cells = []
        for backend in BACKENDS:
            cells += [cell("convstate", backend, scenario, key, digits), cell("raw", backend, scenario, key, digits),
                      ratio(backend, scenario, key if key != "late_ms" else "late_ms")]
        if all(c == "—" for c in cells):
            continue
        print(f"| {label} | " + " | ".join(cells) + " |")

    def extra(label, per_backend):
        print(f"| {label} | " + " | ".join(per_backend) + " |")

    def both(backend, scenario, key, digits):
        return [cell("convstate", backend, scenario, key, digits), cell("raw", backend, scenario, key, digits), ""]

    extra("heap allocations per S1 turn",
          [c for b in BACKENDS for c in both(b, "S1", "allocs_per_turn", 1)])
    extra("round trips per S1 turn",
          ["", "", ""] + [c for b in ("postgres", "mariadb") for c in both(b, "S1", "round_trips_per_turn", 2)])
    extra("WAL flushes (`wal_sync`) per S1 turn", ["", "", "",
                                                   notes.get(("wal_sync", "convstate", "postgres", "S1"), "—"),
                                                   notes.get(("wal_sync", "raw", "postgres", "S1"), "—"), "",
                                                   "", "", ""])
    extra("peak RSS in S5, MB", [c for b in BACKENDS for c in both(b, "S5-big", "peak_rss_mb", 1)])
    classic = results.get(("classic", "postgres", "S6"))
    if classic:
        print()
        print(f"S6 reference, the classic flow of separate statements ({number(classic['round_trips_per_turn'], 0)}"
              f" round trips per turn): {number(classic['turns_per_s'], 1)} turns/s.")


if __name__ == "__main__":
    main()
