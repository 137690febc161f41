#!/usr/bin/env bash
# Turn a Debian 12 / Raspberry Pi OS machine (x86-64 or arm64) into a kiosk.
#
#   sudo packaging/install.sh              install or upgrade this checkout
#   packaging/install.sh --root DIR        write everything under DIR instead of /, and
#                                          skip what only a live system can do (packages,
#                                          the kiosk user, systemd and udev reloads)
#
# Idempotent: running it twice changes nothing. Upgrade-safe: the config in /etc/kiosk and
# the journal in /var/lib/kiosk are never overwritten. See packaging/README.md.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
ROOT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --root) ROOT=$(realpath -m "$2"); shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
LIVE=$([ -z "$ROOT" ] && echo yes || echo no)
say() { printf '%-10s %s\n' "$1" "$2"; }
skip() { say "skipped" "$1 (--root: only on a live system)"; }

if [ "$LIVE" = yes ] && [ "$(id -u)" != 0 ]; then
    echo "install.sh: run as root (sudo), or with --root DIR to try it into a folder" >&2
    exit 1
fi

PACKAGES=(python3 python3-venv cage xwayland libgl1 libegl1 libgles2 libmtdev1
          libsdl2-2.0-0 libusb-1.0-0 cups-client espeak-ng)  # espeak-ng: a calling screen's voice

# 1. system packages
if [ "$LIVE" = yes ]; then
    missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
        say "installed" "packages: ${missing[*]}"
    else
        say "unchanged" "packages"
    fi
else
    skip "apt-get install ${PACKAGES[*]}"
fi

# 2. the kiosk system user
if [ "$LIVE" = yes ]; then
    if id kiosk >/dev/null 2>&1; then
        say "unchanged" "user kiosk"
    else
        useradd --system --home-dir /var/lib/kiosk --shell /usr/sbin/nologin \
                --groups video,input,render,lp,dialout,audio kiosk
        say "created" "user kiosk"
    fi
else
    skip "useradd kiosk"
fi
OWNER=$(id kiosk >/dev/null 2>&1 && echo kiosk || echo root)

# put SRC DEST MODE: install a file of ours, saying whether anything changed
put() {
    local src=$1 dest=$2 mode=$3
    if [ -f "$dest" ] && cmp -s "$src" "$dest" && [ "$(stat -c %a "$dest")" = "$mode" ]; then
        say "unchanged" "${dest#"$ROOT"}"
    else
        install -D -m "$mode" "$src" "$dest"
        say "installed" "${dest#"$ROOT"}"
    fi
}

# 3. folders
install -d -m 0755 "$ROOT/opt/kiosk" "$ROOT/etc/kiosk"
install -d -m 0750 "$ROOT/var/lib/kiosk"
[ "$OWNER" = kiosk ] && [ "$(id -u)" = 0 ] && chown kiosk:kiosk "$ROOT/var/lib/kiosk"
say "ok" "/opt/kiosk /etc/kiosk /var/lib/kiosk"

# 4. the application: a copy of the source and a virtual environment
version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$SRC/kiosk/__init__.py")
stamp="$ROOT/opt/kiosk/venv/.kiosk-version"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$version $(cd "$SRC" && git rev-parse HEAD 2>/dev/null || echo src)" ]; then
    say "unchanged" "/opt/kiosk/venv (kiosk $version)"
else
    rm -rf "$ROOT/opt/kiosk/src"
    mkdir -p "$ROOT/opt/kiosk/src"
    (cd "$SRC" && tar --exclude=.venv --exclude=.tools --exclude=.git --exclude=artifacts \
        --exclude=__pycache__ -cf - .) | tar -C "$ROOT/opt/kiosk/src" -xf -
    [ -x "$ROOT/opt/kiosk/venv/bin/python" ] || python3 -m venv "$ROOT/opt/kiosk/venv"
    "$ROOT/opt/kiosk/venv/bin/python" -m pip install -q --upgrade pip
    "$ROOT/opt/kiosk/venv/bin/python" -m pip install -q "$ROOT/opt/kiosk/src[usb,serial]"
    echo "$version $(cd "$SRC" && git rev-parse HEAD 2>/dev/null || echo src)" > "$stamp"
    say "installed" "/opt/kiosk/venv (kiosk $version)"
fi

# 5. config and the API key: created once, never overwritten
# kiosk.yaml holds the admin PIN's hash: readable by root and the kiosk group only (0640
# root:kiosk), writable by root only.
GROUP=$(getent group kiosk >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && echo kiosk || echo "")
if [ -f "$ROOT/etc/kiosk/kiosk.yaml" ]; then
    chmod 0640 "$ROOT/etc/kiosk/kiosk.yaml"
    say "kept" "/etc/kiosk/kiosk.yaml"
else
    install -m 0640 "$SRC/config/kiosk.yaml" "$ROOT/etc/kiosk/kiosk.yaml"
    say "created" "/etc/kiosk/kiosk.yaml (edit it: branch, kiosk.id, queues, printer)"
fi
[ -n "$GROUP" ] && chown root:kiosk "$ROOT/etc/kiosk/kiosk.yaml"
if [ -f "$ROOT/etc/kiosk/api-key" ]; then
    chmod 0600 "$ROOT/etc/kiosk/api-key"
    say "kept" "/etc/kiosk/api-key"
else
    install -m 0600 /dev/null "$ROOT/etc/kiosk/api-key"
    say "created" "/etc/kiosk/api-key (empty: paste the Videsk backend API key into it)"
fi
[ "$OWNER" = kiosk ] && [ "$(id -u)" = 0 ] && chown kiosk:kiosk "$ROOT/etc/kiosk/api-key"

# 6. systemd unit and udev rule (ours: replaced on upgrade)
put "$SRC/packaging/systemd/kiosk.service" "$ROOT/etc/systemd/system/kiosk.service" 644
put "$SRC/packaging/udev/60-kiosk-printers.rules" "$ROOT/etc/udev/rules.d/60-kiosk-printers.rules" 644
# lockdown of the image: no magic SysRq keys, no login prompts on other consoles
put "$SRC/packaging/sysctl/60-kiosk.conf" "$ROOT/etc/sysctl.d/60-kiosk.conf" 644
put "$SRC/packaging/logind/kiosk.conf" "$ROOT/etc/systemd/logind.conf.d/60-kiosk.conf" 644

# 7. start it
if [ "$LIVE" = yes ]; then
    systemctl daemon-reload
    udevadm control --reload-rules && udevadm trigger --subsystem-match=usb --subsystem-match=usbmisc
    systemctl set-default graphical.target >/dev/null
    sysctl -q -p /etc/sysctl.d/60-kiosk.conf
    # the clock is right before the kiosk numbers tickets (time-sync.target waits for it)
    if systemctl list-unit-files systemd-time-wait-sync.service >/dev/null 2>&1; then
        systemctl enable systemd-time-wait-sync.service >/dev/null 2>&1 || true
    fi
    systemctl enable kiosk.service >/dev/null 2>&1
    say "enabled" "kiosk.service (starts at boot; now: systemctl start kiosk)"
else
    skip "systemctl daemon-reload; udevadm reload; sysctl; systemctl enable kiosk systemd-time-wait-sync"
fi
