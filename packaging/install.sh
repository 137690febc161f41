#!/usr/bin/env bash
# Turn a Debian 12 / Raspberry Pi OS machine (x86-64 or arm64) into a kiosk, or into the
# branches' calling relay.
#
#   sudo packaging/install.sh              install or upgrade this checkout (a kiosk)
#   sudo packaging/install.sh --relay      the calling relay instead: kiosk[relay], the
#                                          kiosk-relay user and service (enabled), its
#                                          config and the webhook's fresh key pair
#   packaging/install.sh --root DIR        write everything under DIR instead of /, and
#                                          skip what only a live system can do (packages,
#                                          the system user, systemd and udev reloads)
#
# Idempotent: running it twice changes nothing. Upgrade-safe: the config and secrets in
# /etc/kiosk and the data in /var/lib are never overwritten. Both roles on one machine
# share /opt/kiosk (the second adds its extras). See packaging/README.md.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
ROOT=""
ROLE=kiosk
while [ $# -gt 0 ]; do
    case "$1" in
        --root) ROOT=$(realpath -m "$2"); shift 2 ;;
        --relay) ROLE=relay; shift ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
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

if [ "$ROLE" = relay ]; then
    PACKAGES=(python3 python3-venv)
    USER_NAME=kiosk-relay
    EXTRAS=relay
else
    PACKAGES=(python3 python3-venv cage xwayland libgl1 libegl1 libgles2 libmtdev1
              libsdl2-2.0-0 libusb-1.0-0 cups-client espeak-ng)  # espeak-ng: a calling screen's voice
    USER_NAME=kiosk
    EXTRAS=usb,serial
fi

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

# 2. the system user: kiosk (with its devices' groups), or kiosk-relay (no groups)
if [ "$LIVE" = yes ]; then
    if id "$USER_NAME" >/dev/null 2>&1; then
        say "unchanged" "user $USER_NAME"
    elif [ "$ROLE" = relay ]; then
        useradd --system --home-dir /var/lib/kiosk-relay --shell /usr/sbin/nologin kiosk-relay
        say "created" "user kiosk-relay"
    else
        useradd --system --home-dir /var/lib/kiosk --shell /usr/sbin/nologin \
                --groups video,input,render,lp,dialout,audio kiosk
        say "created" "user kiosk"
    fi
else
    skip "useradd $USER_NAME"
fi
OWNER=$(id "$USER_NAME" >/dev/null 2>&1 && echo "$USER_NAME" || echo root)

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

# 3. folders (the relay's state directory is systemd's: StateDirectory=kiosk-relay)
install -d -m 0755 "$ROOT/opt/kiosk" "$ROOT/etc/kiosk"
if [ "$ROLE" = relay ]; then
    install -d -m 0700 "$ROOT/var/lib/kiosk-relay"
    [ "$OWNER" = kiosk-relay ] && [ "$(id -u)" = 0 ] && chown kiosk-relay:kiosk-relay "$ROOT/var/lib/kiosk-relay"
    say "ok" "/opt/kiosk /etc/kiosk /var/lib/kiosk-relay"
else
    install -d -m 0750 "$ROOT/var/lib/kiosk"
    [ "$OWNER" = kiosk ] && [ "$(id -u)" = 0 ] && chown kiosk:kiosk "$ROOT/var/lib/kiosk"
    say "ok" "/opt/kiosk /etc/kiosk /var/lib/kiosk"
fi

# 4. the application: a copy of the source and a virtual environment, with the extras of
# every role installed here so far (the stamp: version, commit, extras)
version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$SRC/kiosk/__init__.py")
commit=$(cd "$SRC" && git rev-parse HEAD 2>/dev/null || echo src)
stamp="$ROOT/opt/kiosk/venv/.kiosk-version"
had_version="" had_commit="" had_extras=""
[ -f "$stamp" ] && read -r had_version had_commit had_extras < "$stamp"
want=$(printf '%s\n' ${had_extras//,/ } ${EXTRAS//,/ } | sort -u | paste -sd, -)
if [ "$had_version $had_commit $had_extras" = "$version $commit $want" ]; then
    say "unchanged" "/opt/kiosk/venv (kiosk $version [$want])"
else
    rm -rf "$ROOT/opt/kiosk/src"
    mkdir -p "$ROOT/opt/kiosk/src"
    (cd "$SRC" && tar --exclude=.venv --exclude=.tools --exclude=.git --exclude=artifacts \
        --exclude=__pycache__ -cf - .) | tar -C "$ROOT/opt/kiosk/src" -xf -
    [ -x "$ROOT/opt/kiosk/venv/bin/python" ] || python3 -m venv "$ROOT/opt/kiosk/venv"
    "$ROOT/opt/kiosk/venv/bin/python" -m pip install -q --upgrade pip
    "$ROOT/opt/kiosk/venv/bin/python" -m pip install -q "$ROOT/opt/kiosk/src[$want]"
    echo "$version $commit $want" > "$stamp"
    say "installed" "/opt/kiosk/venv (kiosk $version [$want])"
fi

if [ "$ROLE" = relay ]; then
    # 5. the relay's config and the webhook's keys: created once, never overwritten. The
    # config names no secret itself: 0640 root:kiosk-relay; the provider's private key
    # 0600 root (the relay never reads it).
    GROUP=$(getent group kiosk-relay >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && echo kiosk-relay || echo "")
    if [ -f "$ROOT/etc/kiosk/relay.yaml" ]; then
        chmod 0640 "$ROOT/etc/kiosk/relay.yaml"
        say "kept" "/etc/kiosk/relay.yaml"
    else
        install -m 0640 "$SRC/config/relay.yaml" "$ROOT/etc/kiosk/relay.yaml"
        say "created" "/etc/kiosk/relay.yaml (edit it: kiosk.timezone, relay.devices; tokens: kiosk device-token FILE)"
    fi
    [ -n "$GROUP" ] && chown root:kiosk-relay "$ROOT/etc/kiosk/relay.yaml"
    # The webhook's key pair (the default template: a JWT the provider signs with RS256):
    # the relay keeps the public key; the private one is for the provider's console only.
    if [ -s "$ROOT/etc/kiosk/webhook-jwt.pub" ]; then
        say "kept" "/etc/kiosk/webhook-jwt.pub"
    else
        "$ROOT/opt/kiosk/venv/bin/kiosk" webhook-keys "$ROOT/etc/kiosk" >/dev/null
        chmod 0644 "$ROOT/etc/kiosk/webhook-jwt.pub"
        say "created" "/etc/kiosk/webhook-jwt.pub (the relay's key; its private half is in"
        say "created" "/etc/kiosk/webhook-jwt.provider-secret: paste its one line as the" \
            "provider's secret kioskJwtPrivateKey, then delete it)"
    fi
    [ "$OWNER" = kiosk-relay ] && [ "$(id -u)" = 0 ] && [ -f "$ROOT/etc/kiosk/webhook-jwt.provider-secret" ] \
        && chown root:root "$ROOT/etc/kiosk/webhook-jwt.provider-secret"

    # 6. its systemd unit (ours: replaced on upgrade); the TLS proxy's config is in
    # /opt/kiosk/src/packaging/caddy/Caddyfile (see packaging/README.md)
    put "$SRC/packaging/systemd/kiosk-relay.service" "$ROOT/etc/systemd/system/kiosk-relay.service" 644

    # 7. start it
    if [ "$LIVE" = yes ]; then
        systemctl daemon-reload
        # the clock is right before the relay checks JWTs and keeps the branches' days
        if systemctl list-unit-files systemd-time-wait-sync.service >/dev/null 2>&1; then
            systemctl enable systemd-time-wait-sync.service >/dev/null 2>&1 || true
        fi
        systemctl enable kiosk-relay.service >/dev/null 2>&1
        say "enabled" "kiosk-relay.service (starts at boot; now: systemctl start kiosk-relay)"
    else
        skip "systemctl daemon-reload; systemctl enable kiosk-relay systemd-time-wait-sync"
    fi
    exit 0
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
