#!/bin/sh
# Fake Armadito tool (armadito-info, armadito-scan, the restart command): the tests copy this
# script under the tool's name into a folder next to its recorded output:
#   <name>.out  printed on stdout        <name>.err   printed on stderr (optional)
#   <name>.code exit status (optional)   <name>.argv  one line per run: [arg1][arg2]...
# The agent runs tools with an empty environment, so nothing here relies on PATH.
here=${0%/*}
name=${0##*/}
{ for a in "$@"; do printf '[%s]' "$a"; done; printf '\n'; } >> "$here/$name.argv"
[ -f "$here/$name.out" ] && /bin/cat "$here/$name.out"
[ -f "$here/$name.err" ] && /bin/cat "$here/$name.err" >&2
code=0
[ -f "$here/$name.code" ] && read -r code < "$here/$name.code"
exit "$code"
