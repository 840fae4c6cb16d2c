#!/usr/bin/env bash
# Install the Debian packages needed to build convstate (idempotent).
#
# Usage: scripts/deps.sh [EXTRA_PACKAGE...]
#   Installs only what is missing; does nothing (and needs no network or
#   privileges) when everything is already installed.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

packages=(
    build-essential
    cmake
    pkg-config
    libsoci-dev
    libboost-json1.81-dev
    libfmt-dev
    doctest-dev
    libpq-dev
    libmariadb-dev
    libsqlite3-dev
    libssl-dev
    "$@"
)

missing=()
for pkg in "${packages[@]}"; do
    # shellcheck disable=SC2016  # ${Status} is a dpkg-query format field
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != "install ok installed" ]]; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]} == 0)); then
    echo "deps: all ${#packages[@]} packages already installed"
    exit 0
fi

sudo_cmd=()
if [[ "$(id -u)" -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo_cmd=(sudo)
    else
        echo "deps: missing packages (${missing[*]}) and not root, no sudo available" >&2
        exit 1
    fi
fi

echo "deps: installing ${missing[*]}"
"${sudo_cmd[@]}" apt-get update
"${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
