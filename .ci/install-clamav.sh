#!/bin/sh
# Install ClamAV for the ClamAV backend's tests and benchmark, if it is missing.
# Idempotent: does nothing when clamd, clamdscan and sigtool are already there.
#
# The tests start their own throw-away clamd (tests/clamd/start-clamd.sh): the package's
# services are not needed. They are kept from starting during the install (policy-rc.d)
# and stopped/disabled afterwards when systemd runs, so freshclam does not try the network
# and no system clamd competes with the tests.
set -eu
export DEBIAN_FRONTEND=noninteractive

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

if have clamd && have clamdscan && have sigtool && have clamconf; then
    echo "clamav: already installed ($(clamd --version 2>/dev/null || echo clamd))"
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "clamav is missing and installing it needs root: apt-get install clamav-daemon clamav clamdscan" >&2
    exit 1
fi

# Keep maintainer scripts from starting services (Debian's policy-rc.d convention),
# unless the machine already has its own policy.
POLICY=/usr/sbin/policy-rc.d
OWN_POLICY=0
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$POLICY"
    chmod 755 "$POLICY"
    OWN_POLICY=1
fi
cleanup() { [ "$OWN_POLICY" = 1 ] && rm -f "$POLICY"; }
trap cleanup EXIT

PACKAGES="clamav-daemon clamav clamdscan"
if ! apt-get install -y --no-install-recommends $PACKAGES; then
    apt-get update
    apt-get install -y --no-install-recommends $PACKAGES
fi

# With systemd, make sure the packaged units stay out of the way.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    for unit in clamav-freshclam.service clamav-daemon.socket clamav-daemon.service clamav-clamonacc.service; do
        systemctl stop "$unit" >/dev/null 2>&1 || true
        systemctl disable "$unit" >/dev/null 2>&1 || true
    done
fi

echo "clamav: installed ($(clamd --version 2>/dev/null || echo clamd))"
