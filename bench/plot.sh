#!/usr/bin/env bash
# Draws the S2 per-turn latencies written by bench/run.sh into docs/bench-s2.png:
# latency of each turn against the turn number (the conversation grows by 2 messages a turn),
# full history vs the last-50 window, convstate vs raw, one panel per backend, log y axis.
#
#   bench/plot.sh [CSV] [PNG]    default: bench/results/latest-s2.csv -> docs/bench-s2.png
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
csv=${1:-bench/results/latest-s2.csv}
png=${2:-docs/bench-s2.png}
[[ -f "$csv" ]] || { echo "plot.sh: $csv not found (run bench/run.sh first)" >&2; exit 1; }
command -v gnuplot >/dev/null 2>&1 || scripts/deps.sh gnuplot-nox

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# One file per series: <backend>-<impl>-<variant>.dat holding "turn ms".
awk -F, -v dir="$tmp" 'NR > 1 { print $4, $5 > (dir "/" $2 "-" $1 "-" $3 ".dat") }' "$csv"
mkdir -p "$(dirname "$png")"

series() { # backend -> a gnuplot plot list of the series present
    local b=$1 list="" impl variant f color dash label
    for impl in convstate raw; do
        for variant in full last50; do
            f="$tmp/$b-$impl-$variant.dat"
            [[ -f "$f" ]] || continue
            [[ $impl == convstate ]] && color='#c0392b' || color='#2471a3'
            if [[ $variant == full ]]; then dash=1 label='full history'; else dash=2 label='last-50 window'; fi
            list+="${list:+, }'$f' using 1:2 with lines lw 1.2 dt $dash lc rgb '$color' title '$impl, $label'"
        done
    done
    printf '%s' "$list"
}

{
    echo "set terminal pngcairo size 1400,560 font ',10'"
    echo "set output '$png'"
    echo "set multiplot layout 1,2 title 'S2: one conversation — per-turn latency as it grows (median over the runs)'"
    echo "set logscale y"
    echo "set grid ytics mytics xtics"
    echo "set xlabel 'turn (the conversation holds 2 x turn messages)'"
    echo "set ylabel 'turn latency, ms (log)'"
    echo "set key top left"
    for b in sqlite postgres; do
        s=$(series "$b")
        [[ -n "$s" ]] || continue
        echo "set title '$b'"
        echo "plot $s"
    done
    echo "unset multiplot"
} >"$tmp/plot.gp"
gnuplot "$tmp/plot.gp"
echo "plot.sh: wrote $png"
