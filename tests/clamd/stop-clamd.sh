#!/bin/sh
# Stop a clamd started by start-clamd.sh, by the PID it recorded (never by name).
# Usage: stop-clamd.sh WORKDIR [--rm]     (--rm also deletes WORKDIR)
set -eu
W=${1:?usage: stop-clamd.sh WORKDIR [--rm]}
PIDFILE="$W/clamd.pid"
if [ -s "$PIDFILE" ]; then
    PID=$(cat "$PIDFILE")
    case "$PID" in *[!0-9]*|'') echo "bad pid file $PIDFILE" >&2; exit 1 ;; esac
    # Only signal it if it is the clamd of this WORKDIR.
    if [ -r "/proc/$PID/cmdline" ] && tr '\0' ' ' < "/proc/$PID/cmdline" | grep -q -- "$W/clamd.conf"; then
        kill -TERM "$PID" 2>/dev/null || true
        i=0
        while kill -0 "$PID" 2>/dev/null; do
            i=$((i + 1))
            [ $i -gt 100 ] && { kill -KILL "$PID" 2>/dev/null || true; break; }
            sleep 0.05
        done
    fi
fi
rm -f "$PIDFILE" "$W/clamd.sock"
[ "${2:-}" = "--rm" ] && rm -rf "$W"
exit 0
