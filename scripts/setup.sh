#!/usr/bin/env bash
# Install what lhvdbg needs, and only what is missing; safe to run any number of times.
# Needs only bash and apt (a debootstrap minbase Debian 12 is enough), as root or with sudo.
#   Debian packages: apt-get, only when one is absent (its output goes to a log, shown on
#   failure).
#   Python packages: a virtual environment in .venv with lhvdbg installed editable, at the
#   exact versions of constraints.txt; reinstalled only when pyproject.toml or
#   constraints.txt changed.
#
#   bash scripts/setup.sh [--qemu10]
#     --qemu10   also bring QEMU 10 from bookworm-backports into .qemu10/ (scripts/qemu10)
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES=(
    qemu-system-x86 qemu-utils gdb gcc binutils make
    python3 python3-venv ca-certificates
    grub-pc-bin grub-common xorriso
    chromium zsh  # the HTML report's rendering test; the zsh completion test
)
PYTHON=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.lhvdbg-installed
CONSTRAINTS=constraints.txt

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

qemu10=no
installed=no
for arg in "$@"; do
    case "$arg" in
        --qemu10) qemu10=yes ;;
        *) die "unknown option $arg (usage: scripts/setup.sh [--qemu10])" ;;
    esac
done

missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    say "installing Debian packages: ${missing[*]}"
    installed=yes
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=()
    elif command -v sudo >/dev/null; then
        SUDO=(sudo)
    else
        die "missing Debian packages (${missing[*]}) and not root; install them and re-run"
    fi
    log=$(mktemp "${TMPDIR:-/tmp}/lhvdbg-apt.XXXXXX")
    apt_run() {
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes \
            apt-get -q -o Dpkg::Use-Pty=0 "$@" >>"$log" 2>&1
    }
    apt_run update || { cat "$log" >&2; die "apt-get update failed (log above)"; }
    apt_run install -y --no-install-recommends "${missing[@]}" \
        || { cat "$log" >&2; die "apt-get install ${missing[*]} failed (log above)"; }
    rm -f "$log"
fi

command -v "$PYTHON" >/dev/null || die "$PYTHON not found"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$PYTHON is older than 3.11"

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    say "creating virtual environment $VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV" || die "cannot create $VENV (is python3-venv installed?)"
fi

want=$(cat pyproject.toml "$CONSTRAINTS" | sha256sum | cut -d' ' -f1)
have=$(cat "$STAMP" 2>/dev/null || true)
if [ "$want" != "$have" ] || ! "$VENV/bin/python" -c 'import lhvdbg' 2>/dev/null; then
    say "installing lhvdbg and its Python dependencies (pinned in $CONSTRAINTS) into $VENV"
    installed=yes
    rm -f "$STAMP"
    PIP=("$VENV/bin/python" -m pip -q --disable-pip-version-check)
    "${PIP[@]}" install --upgrade -c "$CONSTRAINTS" pip || die "pip install pip failed"
    # setuptools announces every editable build with an "Editable installation." notice
    # (InformationOnly, not a deprecation) that pip shows even with -q: silence only that.
    PYTHONWARNINGS="${PYTHONWARNINGS:+$PYTHONWARNINGS,}ignore:Editable installation" \
        "${PIP[@]}" install -c "$CONSTRAINTS" -e '.[dev]' || die "pip install failed"
    echo "$want" > "$STAMP"
fi

if [ "$installed" = yes ]; then
    say "ready after ${SECONDS} s"
fi

if [ "$qemu10" = yes ]; then
    bash scripts/qemu10
fi
