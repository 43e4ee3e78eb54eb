#!/usr/bin/env bash
# Installs the Debian package as an operator would (`dpkg -i`) and checks what it put in place:
# the binary, the systemd unit (checked offline by systemd-analyze, since no systemd may run
# here), the configuration as a conffile, completions and man pages; then starts the unit's
# command line with the packaged configuration as an unprivileged user that owns only its
# state directory, as the unit's DynamicUser would, and stops it. Purges the package at the end.
#
#   tests/package/check.sh target/debian/gatehouse_VERSION_ARCH.deb    (as root, or it asks sudo)
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then exec sudo "$0" "$@"; fi
deb="$(realpath "${1:?usage: check.sh PACKAGE.deb}")"

passed=0
pass() { passed=$((passed + 1)); echo "ok: $*"; }
fail() { echo "FAILED: $*" >&2; echo "package: $passed passed, 1 failed"; exit 1; }

state="$(mktemp -d)"
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi
  dpkg --purge gatehouse >/dev/null 2>&1 || true
  rm -rf "$state"
}
trap cleanup EXIT

dpkg -i "$deb" >/dev/null
pass "dpkg -i $(basename "$deb")"

version="$(dpkg-deb -f "$deb" Version)"
[ "$(gatehouse --version)" = "gatehouse ${version%-*}" ] || fail "gatehouse --version: $(gatehouse --version)"
pass "gatehouse --version is the package's version ($version)"

dpkg-query -W -f='${Conffiles}\n' gatehouse | grep -q ' /etc/gatehouse/gatehouse.toml ' ||
  fail "/etc/gatehouse/gatehouse.toml is not a conffile"
pass "/etc/gatehouse/gatehouse.toml is a conffile"

for file in /usr/share/man/man1/gatehouse.1.gz /usr/share/man/man1/gatehouse-backup.1.gz \
  /usr/share/bash-completion/completions/gatehouse /usr/share/zsh/vendor-completions/_gatehouse \
  /usr/share/fish/vendor_completions.d/gatehouse.fish /usr/share/doc/gatehouse/gatehouse.example.toml; do
  [ -s "$file" ] || fail "$file is missing"
done
zcat /usr/share/man/man1/gatehouse.1.gz | grep -q '^\.TH gatehouse 1' || fail "gatehouse.1 is no man page"
bash -c 'source /usr/share/bash-completion/completions/gatehouse && complete -p gatehouse' >/dev/null ||
  fail "the bash completions do not load"
pass "man pages, completions and the example configuration are installed"

unit="$(dpkg -L gatehouse | grep '/systemd/system/gatehouse\.service$')" || fail "no systemd unit"
systemd-analyze verify "$unit" || fail "systemd-analyze verify $unit"
# systemd rates the unit's exposure from 0 (locked down) to 10 (unprotected); the threshold is
# in tenths. Ours is 1.1: a weakened unit fails here.
systemd-analyze security --offline=yes --threshold=15 "$unit" >/dev/null ||
  fail "the unit's exposure: $(systemd-analyze security --offline=yes "$unit" | tail -n1)"
for setting in DynamicUser=yes StateDirectory=gatehouse ProtectSystem=strict NoNewPrivileges=yes; do
  grep -qx "$setting" "$unit" || fail "$unit lacks $setting"
done
pass "the systemd unit verifies, hardened ($(systemd-analyze security --offline=yes "$unit" | tail -n1 | sed 's/.*: //'))"

# The unit's own command line, with the packaged configuration. The environment (which beats
# the file) moves the address and the data folder, so the check never meets a server or data
# this machine already has.
exec_start="$(sed -n 's/^ExecStart=//p' "$unit")"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
chmod 0755 "$state"
install -d -o nobody -g nogroup -m 0700 "$state/gatehouse"
# shellcheck disable=SC2086 # ExecStart is a command line to split.
env GATEHOUSE_LISTEN="127.0.0.1:$port" GATEHOUSE_DATA_DIR="$state/gatehouse" \
  setpriv --reuid=nobody --regid=nogroup --clear-groups --no-new-privs \
  $exec_start >"$state/log" 2>&1 &
server=$!
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break
  kill -0 "$server" 2>/dev/null || fail "the server ended: $(cat "$state/log")"
  sleep 0.1
done
curl -fs "http://127.0.0.1:$port/healthz" >/dev/null || fail "no answer: $(cat "$state/log")"
issuer="$(curl -fs "http://127.0.0.1:$port/.well-known/openid-configuration" | python3 -c 'import json, sys; print(json.load(sys.stdin)["issuer"])')"
[ "$issuer" = "http://127.0.0.1:$port" ] || fail "issuer $issuer"
[ "$(stat -c '%U %a' "$state/gatehouse/master.key")" = "nobody 600" ] ||
  fail "master.key: $(stat -c '%U %a' "$state/gatehouse/master.key")"
pass "$exec_start serves as an unprivileged user, its master key its own"

kill -TERM "$server"
wait "$server" || fail "the server did not stop cleanly: $(cat "$state/log")"
server=""
pass "the server stops on SIGTERM"

dpkg --purge gatehouse >/dev/null
[ ! -e /usr/bin/gatehouse ] && [ ! -e /etc/gatehouse ] || fail "dpkg --purge left files behind"
pass "dpkg --purge removes it"

echo "package: $passed passed, 0 failed"
