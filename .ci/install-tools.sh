#!/bin/sh
# Install the Debian tools the tests call, when missing (a fresh image may lack some).
# Each line: the command the tests run, and the package that ships it. Everything else the
# tests need (clamd, sigtool, clamconf, clamdscan) comes from .ci/install-clamav.sh; the
# rest are test-only programs built by cargo.
set -eu
export DEBIAN_FRONTEND=noninteractive

missing=""
while read -r cmd pkg; do
    [ -n "$cmd" ] || continue
    command -v "$cmd" >/dev/null 2>&1 || missing="$missing $pkg"
done <<'LIST'
systemd-analyze systemd
unshare util-linux
setpriv util-linux
mount mount
kill procps
od coreutils
md5sum coreutils
LIST

if [ -z "$missing" ]; then
    echo "tools: all there"
    exit 0
fi
[ "$(id -u)" = 0 ] || { echo "tools missing ($missing) and installing them needs root" >&2; exit 1; }
# shellcheck disable=SC2086 # one word per package
if ! apt-get install -y --no-install-recommends $missing; then
    apt-get update
    apt-get install -y --no-install-recommends $missing
fi
echo "tools: installed$missing"
