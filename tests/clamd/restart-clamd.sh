#!/bin/sh
# Restart the clamd of a start-clamd.sh WORKDIR with its (possibly edited) clamd.conf.
# Used as the ClamAV backend's `restart_command` in tests and demos:
#   restart_command = ["tests/clamd/restart-clamd.sh", "/tmp/clamd-test.XXXXXX"]
# Prints the new PID. Exits non-zero if clamd does not come back (e.g. a bad clamd.conf).
set -eu
W=${1:?usage: restart-clamd.sh WORKDIR}
HERE=$(cd "$(dirname "$0")" && pwd)
"$HERE/stop-clamd.sh" "$W"
CLAMD=$(command -v clamd 2>/dev/null || echo /usr/sbin/clamd)
"$CLAMD" -c "$W/clamd.conf" > "$W/log/stdout.log" 2>&1 &
PID=$!
i=0
until [ -S "$W/clamd.sock" ] && { ! command -v clamdscan >/dev/null 2>&1 ||
        clamdscan -c "$W/clamd.conf" --ping 1 >/dev/null 2>&1; }; do
    i=$((i + 1))
    kill -0 "$PID" 2>/dev/null || { echo "clamd exited:" >&2; cat "$W/log/stdout.log" >&2; exit 1; }
    [ $i -gt 300 ] && { echo "clamd did not answer within 15 s" >&2; kill "$PID"; exit 1; }
    sleep 0.05
done
echo "$PID"
