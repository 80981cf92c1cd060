#!/bin/sh
# Fake Defender tool for tests (powershell, MpCmdRun, mdatp: this one script, installed under
# those names). It records its argv and environment, then prints the recorded output chosen
# by its arguments. Everything lives next to the installed copy ($DIR):
#   $DIR/calls.log       one block per call: "CALL <name>", then "  <arg>" per argument,
#                        then "  env ARMADITO_VALUE=<v>" when that variable is set
#   $DIR/env.log         the environment of the last call (`env`)
#   $DIR/out/<key>       output to print (@PATH@ = the last scan path argument), missing = exit 97
#   $DIR/out/<key>.after.<k>  used instead once a changing call with key <k> (a scan, a
#                        write) has run: the fake's only state
#   $DIR/out/<key>.exit  exit code (default 0);  $DIR/out/<key>.sleep  seconds to sleep first
set -u
DIR=$(dirname "$0")
NAME=$(basename "$0")
{
    echo "CALL $NAME"
    for a in "$@"; do printf '  %s\n' "$a"; done
    if [ -n "${ARMADITO_VALUE+x}" ]; then printf '  env ARMADITO_VALUE=%s\n' "$ARMADITO_VALUE"; fi
} >>"$DIR/calls.log"
env >"$DIR/env.log"

SCANPATH=""
changes=0
case "$NAME" in
powershell*|pwsh*)
    script=${4:-}
    case "$script" in
    *Get-MpComputerStatus*) key=status ;;
    *Get-MpThreatDetection*) key=detections ;;
    *Get-MpThreat\ *) key=threats ;;
    *Get-MpPreference*) key=prefs ;;
    *-MpPreference*) key=write; changes=1 ;;
    *) key=unknown ;;
    esac ;;
MpCmdRun*)
    key=scan; changes=1
    prev=""
    for a in "$@"; do [ "$prev" = "-File" ] && SCANPATH=$a; prev=$a; done ;;
mdatp*)
    key=${1:-}
    case "${2:-}" in ""|-*) ;; *) key="$1-$2" ;; esac
    case "$1" in
    scan) changes=1; [ "${3:-}" = "--path" ] && SCANPATH=${4:-} ;;
    config) key=config; changes=1 ;;
    exclusion) [ "${2:-}" != list ] && { key=exclusion-write; changes=1; } ;;
    esac ;;
*) key=unknown ;;
esac

# the last scan path stays known, so a later `threat list` can name files under it
if [ -n "$SCANPATH" ]; then printf '%s' "$SCANPATH" >"$DIR/scanpath"
elif [ -f "$DIR/scanpath" ]; then SCANPATH=$(cat "$DIR/scanpath"); fi

out="$DIR/out/$key"
for marker in "$DIR"/changed.*; do
    [ -f "$marker" ] || continue
    after="$out.after.${marker##*/changed.}"
    [ -f "$after" ] && out=$after
done
[ "$changes" = 1 ] && : >"$DIR/changed.$key"
[ -f "$DIR/out/$key.sleep" ] && sleep "$(cat "$DIR/out/$key.sleep")"
if [ ! -f "$out" ]; then
    echo "fake $NAME: no recorded output for $key" >&2
    exit 97
fi
if [ -n "$SCANPATH" ]; then
    # the path is data for sed: escape its special characters
    esc=$(printf '%s' "$SCANPATH" | sed 's/[\/&|]/\\&/g')
    sed "s|@PATH@|$esc|g" "$out"
else
    cat "$out"
fi
code=0
[ -f "$DIR/out/$key.exit" ] && code=$(cat "$DIR/out/$key.exit")
exit "$code"
