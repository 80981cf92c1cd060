#!/usr/bin/env bash
# Drives every branch of .ci/install-clamav.sh and fails when one of them ends with the
# wrong exit status or leaves the machine's policy-rc.d changed (issue 10: a successful
# install used to exit 1 through its EXIT trap).
#
# ClamAV must already be installed. Each case hides what it needs to (clamd, the machine's
# policy-rc.d, apt's package lists, a working apt-get) in a private mount namespace
# (unshare -m), so the machine itself is never changed. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
SCRIPT=$PWD/.ci/install-clamav.sh
LOG=$(mktemp /tmp/test-install-clamav.XXXXXX)
trap 'rm -f "$LOG"' EXIT

[ "$(id -u)" = 0 ] || { echo "test-install-clamav: needs root (mount namespaces)" >&2; exit 1; }
command -v unshare >/dev/null || { echo "test-install-clamav: unshare (util-linux) is missing" >&2; exit 1; }
bash "$SCRIPT" >/dev/null || { echo "test-install-clamav: run install-clamav.sh first" >&2; exit 1; }

failures=0
# run_case NAME EXPECTED_RC SETUP CHECK
#   SETUP runs in a fresh mount namespace where /usr/sbin is a private copy ($T);
#   CHECK runs there after the script and must succeed (e.g. the policy file is as before).
run_case() {
    local name=$1 expected=$2 setup=$3 check=$4 out
    out=$(unshare -m bash -euc '
        T=$(mktemp -d); cp -a /usr/sbin/. "$T"/; mount --bind "$T" /usr/sbin
        '"$setup"'
        rc=0; bash "$1" > "$2" 2>&1 || rc=$?
        if ( '"$check"' ) >> "$2" 2>&1; then echo "$rc ok"; else echo "$rc check-failed"; fi
        ' _ "$SCRIPT" "$LOG") || out="? namespace-failed"
    local rc=${out%% *} verdict=${out#* }
    if [ "$verdict" = ok ] && { { [ "$expected" = 0 ] && [ "$rc" = 0 ]; } ||
                               { [ "$expected" != 0 ] && [ "$rc" != 0 ] && [ "$rc" != "?" ]; }; }; then
        echo "ok   install-clamav: $name (rc=$rc)"
    else
        echo "FAIL install-clamav: $name: rc=$rc ($verdict), expected rc $([ "$expected" = 0 ] && echo 0 || echo '!= 0')"
        sed 's/^/    | /' "$LOG" | tail -15
        failures=$((failures + 1))
    fi
}

hide_clamd='rm -f "$T"/clamd'
own_policy='[ -e "$T"/policy-rc.d ] || printf "#!/bin/sh\nexit 101\n" > "$T"/policy-rc.d'
no_policy='rm -f "$T"/policy-rc.d'
policy_kept='[ -x /usr/sbin/policy-rc.d ]'
policy_gone='[ ! -e /usr/sbin/policy-rc.d ]'
no_lists='L=$(mktemp -d); mkdir -p "$L/partial"; mount --bind "$L" /var/lib/apt/lists'
# apt-get that always fails, found first on PATH (the script calls apt-get through PATH).
broken_apt='B=$(mktemp -d); printf "#!/bin/sh\necho E: simulated failure >&2\nexit 100\n" > "$B/apt-get"
            chmod 755 "$B/apt-get"; export PATH="$B:$PATH"'
# apt-get whose install fails until `apt-get update` ran (lists missing or stale on a fresh
# image); the update itself is only recorded, the install goes to the real apt-get.
stale_apt='B=$(mktemp -d); cat > "$B/apt-get" <<SH
#!/bin/sh
case "\$1" in
  update) touch "$B/updated"; exit 0 ;;
  install) [ -e "$B/updated" ] || { echo "E: Unable to locate package" >&2; exit 100; } ;;
esac
exec /usr/bin/apt-get "\$@"
SH
            chmod 755 "$B/apt-get"; export B PATH="$B:$PATH"'

run_case "already installed"                         0 ":"                                    "$policy_kept || [ ! -e /usr/sbin/policy-rc.d ]"
run_case "installed now, machine has a policy-rc.d"  0 "$hide_clamd; $own_policy"             "$policy_kept"
run_case "installed now, no policy-rc.d"             0 "$hide_clamd; $no_policy"              "$policy_gone"
run_case "installed now, apt lists missing"          0 "$hide_clamd; $no_policy; $no_lists"   "$policy_gone"
run_case "install needs apt-get update first"       0 "$hide_clamd; $no_policy; $stale_apt"  "$policy_gone && [ -e \"\$B/updated\" ]"
run_case "apt-get fails, machine has a policy-rc.d"  1 "$hide_clamd; $own_policy; $broken_apt" "$policy_kept"
run_case "apt-get fails, no policy-rc.d"             1 "$hide_clamd; $no_policy; $broken_apt"  "$policy_gone"

if [ "$failures" != 0 ]; then
    echo "install-clamav: $failures case(s) failed" >&2
    exit 1
fi
echo "install-clamav: every branch exits as it should"
