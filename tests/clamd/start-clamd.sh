#!/bin/sh
# Start a throw-away clamd for tests and demos: offline, no freshclam, a tiny EICAR-only
# signature database, a unix socket and a loopback TCP socket (docs/backends.md §C).
#
# Usage: start-clamd.sh [WORKDIR]
#   prints one line on stdout:  PID PORT SOCKET
#   WORKDIR (default: a new /tmp/clamd-test.XXXXXX) holds clamd.conf, db/, log/clamd.log,
#   log/virusevent.log, clamd.sock, clamd.pid and eicar.com. Stop with stop-clamd.sh WORKDIR.
#
# Environment:
#   CLAMD_PORT        TCP port (default: a random free loopback port, retried on collision)
#   CLAMD_USER        run clamd as this user. Default when root: "clamav" if it exists,
#                     else "nobody" (so files only root can read are really unreadable to
#                     clamd); when not root: the current user.
#   CLAMD_NO_DAILY=1  no daily database: VERSION then carries no db version/date
#   CLAMD_EXTRA_CONF  extra clamd.conf lines; an option named there replaces the default
#                     line for that option (clamd keeps the first occurrence otherwise)
#   CLAMD_NO_TCP=1    unix socket only
#
# Needs: clamd (clamav-daemon). Optional: sigtool (daily db), clamdscan or nc (readiness
# check; without them the script waits for the socket file).
set -eu

W=${1:-$(mktemp -d /tmp/clamd-test.XXXXXX)}
mkdir -p "$W/db" "$W/log" "$W/build"
W=$(cd "$W" && pwd)

command -v clamd >/dev/null 2>&1 || [ -x /usr/sbin/clamd ] || {
    echo "clamd not found: install clamav-daemon (see .ci/install-clamav.sh)" >&2; exit 1; }
CLAMD=$(command -v clamd 2>/dev/null || echo /usr/sbin/clamd)

# EICAR, assembled from two halves so this script is not itself flagged by scanners.
EICAR_A='X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR'
EICAR_B='-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'
printf '%s%s' "$EICAR_A" "$EICAR_B" > "$W/eicar.com"          # 68 bytes, no newline
HEX=$(od -An -v -tx1 "$W/eicar.com" | tr -d ' \n')
echo "Test.EICAR-NDB:0:*:$HEX" > "$W/db/test.ndb"               # body signature
echo "$(md5sum < "$W/eicar.com" | cut -d' ' -f1):68:Test.EICAR-HDB" > "$W/db/test.hdb"
rm -f "$W/db/daily.cud"
if [ "${CLAMD_NO_DAILY:-0}" != 1 ]; then
    if command -v sigtool >/dev/null 2>&1; then
        ( cd "$W/build" && rm -f daily.cud && echo "Test.EICAR-CUD:0:*:$HEX" > daily.ndb &&
          echo "armadito test db" > COPYING &&
          echo ci | sigtool --build=daily.cud --unsigned --cvd-version=27000 --no-cdiff \
              --datadir="$W/build" >/dev/null 2>&1 &&
          cp daily.cud "$W/db/" ) ||
            echo "warning: sigtool build failed, VERSION will have no db version" >&2
    else
        echo "warning: sigtool not found, VERSION will have no db version" >&2
    fi
fi

# Who runs clamd.
if [ "$(id -u)" = 0 ]; then
    if [ -n "${CLAMD_USER:-}" ]; then RUN_AS=$CLAMD_USER
    elif id clamav >/dev/null 2>&1; then RUN_AS=clamav
    else RUN_AS=nobody; fi
else
    RUN_AS=""
fi

# VirusEvent hook of the recipe (the plugin installs its own, see install-virusevent-hook).
cat > "$W/virusevent.sh" <<'VE'
#!/bin/sh
echo "$(date +%s) $CLAM_VIRUSEVENT_VIRUSNAME $CLAM_VIRUSEVENT_FILENAME" >> "$(dirname "$0")/log/virusevent.log"
VE
chmod 755 "$W/virusevent.sh"

random_port() {
    # 20000..59999 from /dev/urandom (no python needed).
    echo $(( 20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 40000 ))
}

write_conf() {
    {
        echo "Foreground yes"
        echo "LocalSocket $W/clamd.sock"
        echo "FixStaleSocket yes"
        if [ "${CLAMD_NO_TCP:-0}" != 1 ]; then
            echo "TCPSocket $PORT"
            echo "TCPAddr 127.0.0.1"
        fi
        echo "DatabaseDirectory $W/db"
        echo "PidFile $W/clamd.pid"
        echo "LogFile $W/log/clamd.log"
        echo "LogTime yes"
        echo "LogClean yes"
        echo "ExtendedDetectionInfo yes"
        echo "StreamMaxLength 1M"
        echo "MaxThreads 4"
        echo "SelfCheck 0"
        echo "Bytecode no"
        echo "AllowAllMatchScan yes"
        echo "VirusEvent $W/virusevent.sh %v"
        [ -n "$RUN_AS" ] && echo "User $RUN_AS"
    } > "$W/clamd.conf.base"
    if [ -n "${CLAMD_EXTRA_CONF:-}" ]; then
        printf '%s\n' "$CLAMD_EXTRA_CONF" > "$W/clamd.conf.extra"
        cp "$W/clamd.conf.base" "$W/clamd.conf.tmp"
        while read -r name _; do
            [ -n "$name" ] || continue
            case "$name" in \#*) continue ;; esac
            grep -v "^$name " "$W/clamd.conf.tmp" > "$W/clamd.conf.tmp2" || true
            mv "$W/clamd.conf.tmp2" "$W/clamd.conf.tmp"
        done < "$W/clamd.conf.extra"
        cat "$W/clamd.conf.tmp" "$W/clamd.conf.extra" > "$W/clamd.conf"
        rm -f "$W/clamd.conf.tmp" "$W/clamd.conf.extra"
    else
        cp "$W/clamd.conf.base" "$W/clamd.conf"
    fi
    rm -f "$W/clamd.conf.base"
}

ping_clamd() {
    [ -S "$W/clamd.sock" ] || return 1
    if command -v clamdscan >/dev/null 2>&1; then
        clamdscan -c "$W/clamd.conf" --ping 1 >/dev/null 2>&1
    elif command -v nc >/dev/null 2>&1; then
        printf 'zPING\0' | nc -U -N -w2 "$W/clamd.sock" 2>/dev/null | grep -q PONG
    else
        sleep 0.2
    fi
}

attempt=0
while :; do
    attempt=$((attempt + 1))
    PORT=${CLAMD_PORT:-$(random_port)}
    write_conf
    rm -f "$W/clamd.sock" "$W/clamd.pid"
    if [ -n "$RUN_AS" ]; then
        # clamd drops to User itself; it needs to write its log and socket here.
        chown -R "$RUN_AS" "$W/db" "$W/log"
        chown "$RUN_AS" "$W"
        chmod 755 "$W"
    fi
    "$CLAMD" -c "$W/clamd.conf" > "$W/log/stdout.log" 2>&1 &
    PID=$!
    i=0
    until ping_clamd; do
        i=$((i + 1))
        if ! kill -0 "$PID" 2>/dev/null; then
            if [ -z "${CLAMD_PORT:-}" ] && [ $attempt -lt 5 ] &&
                grep -qi 'bind\|address already in use' "$W/log/stdout.log"; then
                continue 2   # port taken: try another one
            fi
            echo "clamd exited:" >&2; cat "$W/log/stdout.log" >&2; exit 1
        fi
        if [ $i -gt 300 ]; then
            echo "clamd did not answer within 15 s" >&2; cat "$W/log/stdout.log" >&2
            kill "$PID" 2>/dev/null || true; exit 1
        fi
        sleep 0.05
    done
    break
done
[ "${CLAMD_NO_TCP:-0}" = 1 ] && PORT=0
echo "$PID $PORT $W/clamd.sock"
