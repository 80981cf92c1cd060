#!/bin/sh
# Install ClamAV for the ClamAV backend's tests and benchmark, if it is missing.
# Idempotent: does nothing when clamd, clamdscan, sigtool and clamconf are already there.
#
# The tests start their own throw-away clamd (tests/clamd/start-clamd.sh): the package's
# services are not needed. They are kept from starting during the install (policy-rc.d)
# and stopped/disabled afterwards when systemd runs, so freshclam does not try the network
# and no system clamd competes with the tests.
#
# Exit status: 0 when the tools are there (before or after the install), non-zero only when
# the install really failed. .ci/test-install-clamav.sh drives every branch of this script.
set -eu
export DEBIAN_FRONTEND=noninteractive

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
all_there() { have clamd && have clamdscan && have sigtool && have clamconf; }

if all_there; then
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
# An EXIT trap's last status becomes the script's: this one must end on a command that
# succeeds whatever branch it takes (a bare `[ … ] && rm` returned 1 when the policy file
# was the machine's own, and turned every successful install into a failure).
cleanup() {
    if [ "$OWN_POLICY" = 1 ]; then
        rm -f "$POLICY"
    fi
    return 0
}
trap cleanup EXIT

PACKAGES="clamav-daemon clamav clamdscan"
# shellcheck disable=SC2086 # word splitting of the package list is wanted
if ! apt-get install -y --no-install-recommends $PACKAGES; then
    # A fresh image may have no package lists (or stale ones): refresh once and retry.
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

for pkg in $PACKAGES; do
    if [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" != "install ok installed" ]; then
        echo "clamav: apt-get returned success but $pkg is not installed" >&2
        exit 1
    fi
done
echo "clamav: installed ($(clamd --version 2>/dev/null || echo clamd))"
