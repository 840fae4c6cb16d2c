#!/usr/bin/env bash
# Runs the README's two commands the way a new user would: in a fresh Debian 12 (bookworm)
# minbase root with nothing else installed, on a clone of the current commit.
#
# Usage (as root): scripts/fresh-machine-test.sh [--keep]
#   --keep   leave the root directory behind for inspection (it is still unmounted)
#
# What it does:
#   1. installs debootstrap with apt if it is missing;
#   2. makes a minbase bookworm root with debootstrap, from the mirror this machine's own apt
#      configuration names (/etc/apt/sources.list.d/*.sources or /etc/apt/sources.list); the
#      pristine root is cached as a tarball in CONVSTATE_FRESH_CACHE (default
#      /var/cache/convstate-fresh) — only debootstrap's output, never a package installed later;
#   3. gives the root this machine's Debian apt sources (so it sees the same updates), clones
#      the commit into it (and copies ../shared beside the clone when it exists);
#   4. runs `scripts/run-example.sh`, then `scripts/test.sh`, inside with chroot, a clean
#      environment and /proc, /sys, /dev mounted; both outputs are printed;
#   5. on every exit path stops whatever is still running inside the root, unmounts it and
#      deletes it. Exits non-zero when either command failed.
set -euo pipefail

keep=0
case "${1:-}" in
    --keep) keep=1 ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    "") ;;
    *)
        echo "usage: scripts/fresh-machine-test.sh [--keep]" >&2
        exit 2
        ;;
esac

if [[ "$(id -u)" -ne 0 ]]; then
    echo "fresh-machine: needs root (debootstrap, mount, chroot)" >&2
    exit 1
fi

start_time=$SECONDS
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
suite=bookworm
cache_dir=${CONVSTATE_FRESH_CACHE:-/var/cache/convstate-fresh}
say() { printf 'fresh-machine: %s\n' "$*"; }

# The Debian mirror this machine uses, from its apt configuration (deb822 first, then the
# one-line format). Never written into the repository.
debian_mirror() {
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        # The URIs of the stanza whose Suites name the release itself (not -security).
        uri=$(awk -v suite="$suite" '
            BEGIN { RS = ""; FS = "\n" }
            {
                uris = ""; ok = 0
                for (i = 1; i <= NF; i++) {
                    if ($i ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", $i); split($i, u, /[ \t]+/); uris = u[1] }
                    if ($i ~ /^Suites:/) { n = split($i, s, /[ \t]+/); for (j = 2; j <= n; j++) if (s[j] == suite) ok = 1 }
                    if ($i ~ /^Types:/ && $i !~ /(^|[ \t])deb([ \t]|$)/) { ok = 0; break }
                }
                if (ok && uris != "") { print uris; exit }
            }' "$f")
        if [[ -n $uri ]]; then
            printf '%s\n' "$uri"
            return 0
        fi
    done
    if [[ -f /etc/apt/sources.list ]]; then
        uri=$(awk -v suite="$suite" '$1 == "deb" && $0 !~ /^#/ {
                  i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                  if ($(i + 1) == suite) { print $i; exit } }' /etc/apt/sources.list)
        if [[ -n $uri ]]; then
            printf '%s\n' "$uri"
            return 0
        fi
    fi
    return 1
}

if ! command -v debootstrap >/dev/null 2>&1; then
    say "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap
fi

work=$(mktemp -d /var/tmp/convstate-fresh.XXXXXX)
root=$work/root
mounted=()

cleanup() {
    local status=$? pid link i summary=
    set +e
    # Anything still running inside the root was started by this run: stop it.
    for link in /proc/[0-9]*/root; do
        pid=${link#/proc/}
        pid=${pid%/root}
        [[ "$(readlink "$link" 2>/dev/null)" == "$root" ]] && kill -KILL "$pid" 2>/dev/null
    done
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
        umount -R "${mounted[i]}" 2>/dev/null || umount -R -l "${mounted[i]}" 2>/dev/null
    done
    # The test command's own count, printed last so that a reader of the closing lines sees it.
    [[ -f $work/test.log ]] && summary=$(grep -E '^test.sh: [0-9]+ passed, [0-9]+ failed$' "$work/test.log" | tail -n 1)
    # (grep without -q: leaving early could kill findmnt with SIGPIPE and, under pipefail, read as
    # "nothing mounted".)
    if findmnt -rn -o TARGET | grep "^$root" >/dev/null; then
        say "warning: mounts are left under $root; not deleting it"
    elif ((keep)); then
        say "kept $root"
    else
        # --one-file-system: never descend into anything that might still be mounted.
        rm -rf --one-file-system "$work"
    fi
    say "finished in $((SECONDS - start_time)) s (exit status $status)"
    [[ -n $summary ]] && printf '%s\n' "$summary"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 1. a pristine minbase root ---------------------------------------------------------------
mirror=$(debian_mirror) || {
    say "no Debian '$suite' source found in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list"
    exit 1
}
tarball=$cache_dir/$suite-minbase-$(dpkg --print-architecture).tar
mkdir -p "$root"
if [[ -s $tarball ]]; then
    say "unpacking the cached pristine $suite root ($tarball)"
    tar -C "$root" -xpf "$tarball"
else
    say "debootstrap --variant=minbase $suite (mirror from this machine's apt configuration)"
    debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
        tail -n 30 "$work/debootstrap.log"
        exit 1
    }
    mkdir -p "$cache_dir"
    tar -C "$root" -cpf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
fi

# --- 2. this machine's way to the Debian archive, the clone, the notes ---------------------------
# The root reads the archive as this machine does: its Debian sources (deb822 files signed by
# the Debian archive keyring, or one-line lists naming the mirror) and its Acquire:: settings.
rm -f "$root/etc/apt/sources.list"
mkdir -p "$root/etc/apt/sources.list.d" "$root/etc/apt/apt.conf.d"
for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] && grep -q 'debian-archive-keyring' "$f" && cp "$f" "$root/etc/apt/sources.list.d/"
done
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] && grep -qF "$mirror" "$f" && cp "$f" "$root/etc/apt/${f#/etc/apt/}"
done
for f in /etc/apt/apt.conf.d/*; do
    [[ -f $f ]] && grep -q '^Acquire::' "$f" && cp "$f" "$root/etc/apt/apt.conf.d/"
done
cp -L /etc/resolv.conf "$root/etc/resolv.conf"

commit=$(git -C "$repo_root" rev-parse HEAD)
mkdir -p "$root/work"
git clone -q --no-hardlinks "$repo_root" "$root/work/convstate"
git -C "$root/work/convstate" checkout -q "$commit"
if [[ -d $repo_root/../shared ]]; then
    cp -r "$repo_root/../shared" "$root/work/shared"
fi
say "cloned $commit into the fresh root"

# --- 3. mounts --------------------------------------------------------------------------------
mount -t proc proc "$root/proc"
mounted+=("$root/proc")
mount --rbind /sys "$root/sys"
mount --make-rslave "$root/sys"
mounted+=("$root/sys")
mount --rbind /dev "$root/dev"
mount --make-rslave "$root/dev"
mounted+=("$root/dev")

# --- 4. the README's two commands -------------------------------------------------------------
in_root() {
    chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb CI="${CI:-}" \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        /bin/bash -c "cd /work/convstate && $1" </dev/null
}

status=0
say "=== command 1: scripts/run-example.sh"
in_root scripts/run-example.sh || status=$?
if ((status != 0)); then
    say "command 1 failed (exit status $status)"
    exit "$status"
fi
say "=== command 2: scripts/test.sh"
in_root scripts/test.sh 2>&1 | tee "$work/test.log" || status=$?
if ((status != 0)); then
    say "command 2 failed (exit status $status)"
    exit "$status"
fi
say "both README commands passed in a fresh Debian 12 root"
