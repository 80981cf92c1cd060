# Shared body of the fake antivirus tools under tests/fakes (sourced by each tool script,
# which sets $tool, and optionally $write_to, first). The agent runs the tools with an empty
# environment, so everything here is found relative to the script and by absolute path.
#
# Files, relative to the product root (the folder above the tool's bin/ or sbin/):
#   argv.log                one line per call: [argv0][argv1]...  (tests assert exact lines)
#   scenario/<tool>         optional: which recorded output to play (default: "default")
#   out/<tool>.<scenario>   what the tool prints (to $write_to instead, when set)
#   out/<tool>.<scenario>.code   its exit code (default 0)
# Scenario "sleep" sleeps 60 s instead (timeout tests: the caller must kill it).
root=${0%/*}/..
{ printf '[%s]' "$0" "$@"; printf '\n'; } >> "$root/argv.log"
scenario=default
if [ -f "$root/scenario/$tool" ]; then read -r scenario < "$root/scenario/$tool"; fi
if [ "$scenario" = sleep ]; then exec /bin/sleep 60; fi
out="$root/out/$tool.$scenario"
if [ -f "$out" ]; then
    if [ -n "${write_to:-}" ]; then /bin/cat "$out" > "$write_to"; else /bin/cat "$out"; fi
fi
code=0
if [ -f "$out.code" ]; then read -r code < "$out.code"; fi
exit "$code"
