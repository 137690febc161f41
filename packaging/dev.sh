#!/usr/bin/env bash
# The README's two commands, on a fresh Debian/Ubuntu machine or a developer's laptop:
#
#   packaging/dev.sh demo [ARGS]   set everything up, then run the kiosk demo: the touch
#                                  UI against the built-in mock API and a virtual printer
#                                  (on a machine with no display: the headless demo)
#   packaging/dev.sh test [ARGS]   set everything up, then lint, type-check and run the
#                                  tests (ARGS go to pytest)
#
# Set-up is idempotent and quick when nothing changed: a virtual environment in .venv
# with the project installed editable; for the tests also the ESC/POS printer emulator
# (emupos, Python 3.13, in .tools/emupos) and the system packages the tests need
# (installed when run as root: see `test` below).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

python_ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }

find_python() {
    local c
    for c in "${PYTHON:-}" python3.11 python3.12 python3 ; do
        [ -n "$c" ] && command -v "$c" >/dev/null 2>&1 && python_ok "$c" && { echo "$c"; return; }
    done
    if command -v pyenv >/dev/null 2>&1; then
        for c in "$(pyenv root)"/versions/3.1[1-9]*/bin/python3; do
            [ -x "$c" ] && python_ok "$c" && { echo "$c"; return; }
        done
    fi
    echo "kiosk needs Python 3.11 or newer (apt-get install python3 python3-venv)" >&2
    exit 1
}

venv_ok() {
    # Debian splits venv's pip bootstrap into python3-venv: without it, `python3 -m venv`
    # stops with a traceback. Install it as root (like the test command's system
    # packages), else say the one line to run.
    local py=$1 pkg
    "$py" -c 'import ensurepip, venv' 2>/dev/null && return 0
    pkg=python3-venv
    if [ "$(command -v "$py")" != "$(command -v python3 2>/dev/null)" ]; then
        pkg="python$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv"
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing $pkg (Python's virtual environments)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg"
        "$py" -c 'import ensurepip, venv' 2>/dev/null && return 0
    fi
    echo "kiosk needs Python's venv module; install it with: sudo apt-get install $pkg" >&2
    exit 1
}

setup_venv() {
    # $1: "runtime" (the demo: the kiosk, and the relay and mock API it runs beside it)
    # or "dev" (the tests, the linters and the build tools too). A dev install serves the
    # demo as well.
    local extras=$1 stamp=.venv/.kiosk-installed want have
    want=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
    if [ ! -x .venv/bin/python ]; then
        local py
        py=$(find_python)
        venv_ok "$py"
        say "creating .venv"
        "$py" -m venv .venv
    fi
    have=$(cat "$stamp" 2>/dev/null || true)
    [ "$have" = "$want" ] && have="$want dev"  # written before there was a runtime-only set-up
    if [ "$have" != "$want dev" ] && { [ "$extras" = dev ] || [ "$have" != "$want runtime" ]; }; then
        say "installing kiosk and its ${extras/dev/development} dependencies into .venv"
        .venv/bin/python -m pip install -q --upgrade pip
        if [ "$extras" = dev ]; then
            .venv/bin/python -m pip install -q -e ".[dev,relay,mock]"
        else
            .venv/bin/python -m pip install -q -e ".[relay,mock]"
        fi
        echo "$want $extras" > "$stamp"
    fi
}

find_python313() {
    local c
    for c in "${EMUPOS_PYTHON:-}" python3.13 "$(command -v pyenv >/dev/null && pyenv root)"/versions/3.13*/bin/python3.13; do
        [ -n "$c" ] || continue
        if PYENV_VERSION=3.13.0 "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; then
            echo "$c"; return
        fi
    done
    return 1
}

setup_emupos() {
    # The ESC/POS printer emulator the printing tests talk to over loopback. It needs
    # Python 3.13 (pyenv's, or the system's), in a venv of its own.
    [ -x .tools/emupos/bin/emupos ] && return
    local py
    if ! py=$(find_python313); then
        echo "the printer emulator (emupos) needs Python 3.13: install it (pyenv install 3.13 or" \
             "apt-get install python3.13) or set EMUPOS_PYTHON" >&2
        exit 1
    fi
    say "installing the printer emulator (emupos) into .tools/emupos"
    PYENV_VERSION=3.13.0 "$py" -m venv .tools/emupos
    .tools/emupos/bin/python -m pip install -q "emupos>=0.4,<0.5"
}

case "${1:-}" in
    demo)
        shift
        setup_venv runtime
        exec .venv/bin/kiosk demo "$@"
        ;;
    test)
        shift
        setup_venv dev
        setup_emupos
        # What the tests use from Debian, installed at once when run as root (CI):
        # systemd-analyze (the units are scored), faketime (a wrong clock), espeak-ng
        # (speech), redis-server (the relay's replicas), promtool (the fleet's alerts),
        # caddy (the relay's shipped Caddyfile is run in front of it), chromium and its
        # driver (the phone ticket's and the fleet's pages, in a real browser).
        missing=()
        for need in systemd-analyze:systemd faketime:faketime espeak-ng:espeak-ng \
                    redis-server:redis-server promtool:prometheus caddy:caddy \
                    chromium:chromium chromedriver:chromium-driver; do
            command -v "${need%%:*}" >/dev/null 2>&1 || missing+=("${need#*:}")
        done
        if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ]; then
            say "installing ${missing[*]} (the tests use them)"
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
                --no-install-recommends "${missing[@]}"
        fi
        say "ruff"
        .venv/bin/ruff check kiosk tests benchmarks
        say "mypy --strict"
        .venv/bin/mypy
        say "pytest"
        exec .venv/bin/pytest "$@"
        ;;
    *)
        echo "usage: packaging/dev.sh demo|test [ARGS]" >&2
        exit 2
        ;;
esac
