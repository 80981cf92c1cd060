#!/usr/bin/env bash
# Windows smoke run under Wine (issue 15): the cross-built armadito-agent.exe and the five
# backend .dll files, against the GLPI double (a Linux process on 127.0.0.1).
#   1. `--version`   2. `plugins` (the five .dll load through the ABI checks)
#   3. a plugins folder others may write to is refused (the Windows ACL check, for real)
#   4. `-t Enrollment`   5. `-t State` with the Defender backend reading a fake powershell.exe
# Installs what it needs (mingw, wine64, the rustup target) when missing; fails loudly.
# Debian 12's Wine 8 lacks bcryptprimitives.dll (ProcessPrng, used by Rust std >= 1.78): a
# test-only shim built here from tests/wine/bcryptprimitives.c goes next to the .exe.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=x86_64-pc-windows-gnu
KEY=0RV2V-2RYTX-NX4OW-7LARZ-KZQAJ
fail() { echo "windows-smoke: FAILED: $*" >&2; exit 1; }

apt_install() {
    [ "$(id -u)" = 0 ] || fail "$* missing and installing needs root"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "$@" >/dev/null ||
        { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "$@" >/dev/null; } ||
        fail "cannot install $*"
}
command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || apt_install gcc-mingw-w64-x86-64
# Debian's wine64 package installs its loader under /usr/lib/wine (the `wine` wrapper package
# would add /usr/bin/wine and 32-bit Wine; not needed for a 64-bit .exe)
find_wine() { command -v wine64 2>/dev/null || { [ -x /usr/lib/wine/wine64 ] && echo /usr/lib/wine/wine64; }; }
find_wine >/dev/null || apt_install wine64
command -v curl >/dev/null 2>&1 || apt_install curl
rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET"
WINE=$(find_wine) || fail "wine64 not found after installing it"
WINESERVER=$(dirname "$WINE")/wineserver

echo "== windows smoke: build"
# The same package selections as .ci/run's cross-build and test steps, so after them both
# commands are no-ops (another selection would unify features differently and rebuild).
cargo build --workspace --target "$TARGET" --locked
cargo test --workspace --locked --no-run -q
OUT=target/$TARGET/debug

WORK=$(mktemp -d)
DOUBLE_PID=""
cleanup() {
    [ -n "$DOUBLE_PID" ] && kill "$DOUBLE_PID" 2>/dev/null || true
    WINEPREFIX="$WORK/prefix" "$WINESERVER" -k 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/bin" "$WORK/plugins" "$WORK/fake" "$WORK/state"
cp "$OUT/armadito-agent.exe" "$WORK/bin/"
cp "$OUT"/armadito_backend_{clamav,armadito,defender,eset,kaspersky}.dll "$WORK/plugins/"
x86_64-w64-mingw32-gcc -O2 -shared -o "$WORK/bin/bcryptprimitives.dll" tests/wine/bcryptprimitives.c
x86_64-w64-mingw32-gcc -O2 -o "$WORK/fake/powershell.exe" tests/wine/fake-powershell.c
cp tests/fakes/defender/fixtures/windows/status-ps51.json "$WORK/fake/status.json"

# Wine sees / as Z:
winpath() { printf 'Z:%s' "${1//\//\\}"; }

target/debug/glpi-double --listen 127.0.0.1:0 --key "$KEY" >"$WORK/double.out" 2>"$WORK/double.err" &
DOUBLE_PID=$!
for _ in $(seq 100); do grep -q "listening on" "$WORK/double.out" 2>/dev/null && break; sleep 0.1; done
BASE=$(sed -n 's/^glpi-double listening on //p' "$WORK/double.out")
[ -n "$BASE" ] || fail "glpi-double did not start: $(cat "$WORK/double.err")"
ADMIN=${BASE%%/glpi/*}/admin

write_config() { # PLUGINS_DIR FILE
cat >"$2" <<TOML
server = "$BASE"
state_dir = '$(winpath "$WORK/state")'
plugins_dir = '$(winpath "$1")'
uuid = "4C4C4544-0033-4A10-8051-B4C04F4E4B32"
backend = "defender"
[http]
timeout = 10
[backends.defender]
powershell = '$(winpath "$WORK/fake/powershell.exe")'
[backends.clamav]
tcp = "127.0.0.1:3310"
TOML
}
write_config "$WORK/plugins" "$WORK/agent.toml"

export WINEPREFIX="$WORK/prefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
CONF=$(winpath "$WORK/agent.toml")
agent() { "$WINE" "$WORK/bin/armadito-agent.exe" "$@"; }

echo "== windows smoke: wine prefix"
t0=$(date +%s)
"$WINE" wineboot --init >/dev/null 2>&1 || true
echo "prefix ready in $(( $(date +%s) - t0 )) s"

echo "== windows smoke: --version"
v=$(agent --version) || fail "armadito-agent.exe --version exited $?"
echo "$v"
case "$v" in *armadito-agent*) ;; *) fail "--version printed: $v" ;; esac

echo "== windows smoke: plugins"
p=$(agent -c "$CONF" plugins 2>&1) || fail "plugins exited $?: $p"
echo "$p"
for name in clamav armadito defender eset kaspersky; do
    echo "$p" | grep -q "$name" || fail "plugin $name not listed"
done
echo "$p" | grep -qiE "refused|error" && fail "a plugin was refused"

echo "== windows smoke: a plugins folder others may write to is refused (ACL check)"
mkdir -p "$WORK/open-plugins"
cp "$WORK/plugins/armadito_backend_defender.dll" "$WORK/open-plugins/"
chmod 0777 "$WORK/open-plugins"
write_config "$WORK/open-plugins" "$WORK/open.toml"
p=$(agent -c "$(winpath "$WORK/open.toml")" plugins 2>&1) || true
echo "$p" | grep -q "may write to it" || fail "a folder others may write to was not refused: $p"
echo "$p" | grep "may write to it" | head -1

echo "== windows smoke: -t Enrollment"
agent -c "$CONF" -t Enrollment -k "$KEY" || fail "Enrollment exited $?"
curl -fsS "$ADMIN/agents" | grep -q '4C4C4544-0033-4A10-8051-B4C04F4E4B32' ||
    fail "the double has no enrolled agent"

echo "== windows smoke: -t State (Defender through the fake powershell.exe)"
agent -c "$CONF" -t State || fail "State exited $?"
grep -q "Get-MpComputerStatus" "$WORK/fake/calls.log" || fail "powershell.exe was not called"
states=$(curl -fsS "$ADMIN/states")
echo "$states" | grep -q '"running"' || fail "no running state on the double: $states"
echo "windows smoke: OK"
