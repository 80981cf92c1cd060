#!/usr/bin/env bash
# The Debian package (issue 13): build it with cargo-deb (packaging/build-deb.sh), install it
# with dpkg, run the agent from the installed paths (`--version`, `plugins`: the five backends,
# none refused), check the installed files and modes, verify the installed systemd unit, then
# purge it so a re-run starts clean. Prints the package size and the step's duration.
# Runs as root on a Debian machine (dpkg); fails loudly on anything missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PKG=armadito-agent
BACKENDS="armadito clamav defender eset kaspersky"
fail() { echo "deb: FAILED: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (dpkg -i)"
command -v systemd-analyze >/dev/null 2>&1 || fail "systemd-analyze missing (.ci/install-tools.sh)"

t0=$(date +%s)
if ! command -v cargo-deb >/dev/null 2>&1; then
    echo "== cargo install cargo-deb"
    cargo install cargo-deb --locked
fi
t_install=$(date +%s)

echo "== build the package"
# --fast: this package is only installed and thrown away; a release build omits it.
# The release profile's fat LTO and single codegen unit (smallest resident set, see Cargo.toml)
# cost CI several minutes on 2 cores; this package is installed and thrown away, so CI builds it
# with thin LTO and parallel codegen: the same code and packaging, faster to compile.
deb=$(CARGO_PROFILE_RELEASE_LTO=thin CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    bash packaging/build-deb.sh --fast | tail -n 1)
[ -f "$deb" ] || fail "packaging/build-deb.sh named no package file: '$deb'"
t_build=$(date +%s)
echo "deb: $deb, $(stat -c %s "$deb") bytes, built in $(( t_build - t_install )) s"
dpkg-deb --info "$deb" | sed -n '/Package:/,$p'
dpkg-deb --contents "$deb"

echo "== dpkg -i"
# A run that failed half-way may have left it installed.
if dpkg -s "$PKG" >/dev/null 2>&1; then dpkg --purge "$PKG"; fi
trap 'dpkg --purge "$PKG" >/dev/null 2>&1 || true' EXIT
dpkg -i "$deb"

echo "== the installed agent"
# From the installed paths, with the installed /etc/armadito-agent/agent.toml (no -c, no
# environment): the defaults and the packaged file must agree with where files are.
clean_env() { env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
version=$(clean_env /usr/bin/armadito-agent --version)
echo "$version"
[ "$version" = "armadito-agent $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)" ] ||
    fail "--version: '$version'"
plugins=$(clean_env /usr/bin/armadito-agent plugins)
echo "$plugins"
! grep -Eq 'refused|duplicate' <<<"$plugins" || fail "plugins: some were refused"
usable=$(clean_env /usr/bin/armadito-agent --list-backends | sort | tr '\n' ' ')
[ "$usable" = "$BACKENDS " ] || fail "usable backends: '$usable', expected '$BACKENDS '"
for b in $BACKENDS; do
    grep -q "libarmadito_backend_$b.so" <<<"$plugins" || fail "plugins: no libarmadito_backend_$b.so"
done
[ "$(clean_env /usr/bin/armadito-agent --get-agentid)" = 0 ] || fail "--get-agentid on a fresh install"

echo "== installed files"
mode() { stat -c '%a %U:%G' "$1"; }
[ "$(mode /var/lib/armadito-agent)" = "700 root:root" ] || fail "/var/lib/armadito-agent: $(mode /var/lib/armadito-agent)"
[ "$(mode /etc/armadito-agent/agent.toml)" = "600 root:root" ] || fail "agent.toml: $(mode /etc/armadito-agent/agent.toml)"
dpkg-query -W -f='${Conffiles}\n' "$PKG" | grep -q '^ /etc/armadito-agent/agent.toml ' ||
    fail "agent.toml is not a conffile"
[ "$(mode /usr/lib/armadito-agent/plugins)" = "755 root:root" ] || fail "plugins dir: $(mode /usr/lib/armadito-agent/plugins)"
[ -x /usr/bin/armadito-plugin-host ] || fail "no /usr/bin/armadito-plugin-host"
zcat /usr/share/man/man1/armadito-agent.1.gz | grep -q '^\.TH armadito-agent' || fail "man page"
grep -q -- '--get-agentid' /usr/share/bash-completion/completions/armadito-agent || fail "bash completion"
[ -s /usr/share/zsh/vendor-completions/_armadito-agent ] || fail "zsh completion"
[ -s /usr/share/fish/vendor_completions.d/armadito-agent.fish ] || fail "fish completion"

echo "== systemd-analyze verify (the installed unit)"
unit=/usr/lib/systemd/system/armadito-agent.service
[ -f "$unit" ] || fail "no $unit"
out=$(cd / && systemd-analyze verify --man=no "$unit" 2>&1) || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify warns: $out"

echo "== dpkg --purge"
trap - EXIT
dpkg --purge "$PKG"
for f in /usr/bin/armadito-agent /usr/bin/armadito-plugin-host /usr/lib/armadito-agent \
    /etc/armadito-agent /var/lib/armadito-agent "$unit"; do
    [ ! -e "$f" ] || fail "$f left after purge"
done
echo "deb: OK in $(( $(date +%s) - t0 )) s (cargo-deb install $(( t_install - t0 )) s, build $(( t_build - t_install )) s)"
