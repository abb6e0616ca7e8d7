#!/usr/bin/env bash
# Install what lhvdbg needs, and only what is missing; safe to run any number of times.
#   Debian packages: apt-get, only when one is absent.
#   Python packages: a virtual environment in .venv with lhvdbg installed editable,
#   reinstalled only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES=(
    qemu-system-x86 gdb gcc binutils make
    python3 python3-venv
    grub-pc-bin grub-common xorriso
)
PYTHON=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.lhvdbg-installed

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    say "installing Debian packages: ${missing[*]}"
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=()
    elif command -v sudo >/dev/null; then
        SUDO=(sudo)
    else
        die "missing Debian packages (${missing[*]}) and not root; install them and re-run"
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq || die "apt-get update failed"
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
fi

command -v "$PYTHON" >/dev/null || die "$PYTHON not found"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$PYTHON is older than 3.11"

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    say "creating virtual environment $VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV" || die "cannot create $VENV (is python3-venv installed?)"
fi

want=$(sha256sum pyproject.toml | cut -d' ' -f1)
have=$(cat "$STAMP" 2>/dev/null || true)
if [ "$want" != "$have" ] || ! "$VENV/bin/python" -c 'import lhvdbg' 2>/dev/null; then
    say "installing lhvdbg and its Python dependencies into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[dev]' \
        || die "pip install failed"
    echo "$want" > "$STAMP"
fi
