#!/usr/bin/env bash
# Installs QuickFIX (Debian's libquickfix-dev and libquickfix-doc) and builds the FIX
# test venue of issue 13 (gateways/fixvenue) into target/fixvenue/:
#   target/fixvenue/fixvenue            the venue (gateways/fixvenue/README.md)
#   target/fixvenue/spec/FIX44.xml      QuickFIX's FIX 4.4 data dictionary
# Debian's binary packages do not ship QuickFIX's spec/*.xml, so the dictionary comes
# from the same version's Debian source package, fetched with `apt-get source` into a
# private directory (the system's apt sources and lists are left as they are).
# Idempotent: installs only what is missing and rebuilds only when a source is newer
# than the binary. Needs root (or sudo) and apt; prints every step it takes.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
out="$root/target/fixvenue"
dict="$out/spec/FIX44.xml"

say() { echo "install-quickfix: $*"; }
die() { echo "install-quickfix: $*" >&2; exit 1; }

installed() { [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]; }

sudo=""
if [[ "$(id -u)" != 0 ]] && command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
fi

# 1. The packages: QuickFIX and a C++ compiler with make.
missing=()
for pkg in libquickfix-dev libquickfix-doc; do
    command -v dpkg-query >/dev/null 2>&1 && installed "$pkg" || missing+=("$pkg")
done
command -v g++ >/dev/null 2>&1 || missing+=(g++)
command -v make >/dev/null 2>&1 || missing+=(make)
if ((${#missing[@]} == 0)); then
    say "libquickfix-dev $(dpkg-query -W -f='${Version}' libquickfix-dev), libquickfix-doc, g++ and make are present"
else
    command -v apt-get >/dev/null 2>&1 ||
        die "apt-get not found; install ${missing[*]} (QuickFIX 1.15 C++ headers and library) with your system's package manager"
    if [[ "$(id -u)" != 0 && -z "$sudo" ]]; then
        die "not root and no sudo; run as root: apt-get install -y ${missing[*]}"
    fi
    say "missing: ${missing[*]}; running: ${sudo:+$sudo }apt-get update"
    $sudo apt-get update
    say "running: ${sudo:+$sudo }apt-get install -y --no-install-recommends ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
    for pkg in libquickfix-dev libquickfix-doc; do
        installed "$pkg" || die "apt-get finished but $pkg is still not installed"
    done
    say "installed libquickfix-dev $(dpkg-query -W -f='${Version}' libquickfix-dev)"
fi
[[ -f /usr/include/quickfix/Application.h ]] ||
    die "/usr/include/quickfix/Application.h missing although libquickfix-dev is installed"

# 2. The FIX44 data dictionary, from the source package of the installed version.
if [[ -s "$dict" ]]; then
    say "data dictionary present: $dict"
else
    srcver="$(dpkg-query -W -f='${source:Version}' libquickfix-dev)"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    # apt drops privileges to _apt for downloads; let it write here.
    chmod 755 "$tmp"
    mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/parts" "$tmp/src"
    # The system's binary sources, as deb-src entries (one-line and deb822 formats).
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        if [[ -f "$f" ]]; then
            sed -n 's/^[[:space:]]*deb[[:space:]]/deb-src /p' "$f" >>"$tmp/parts/system.list"
        fi
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        if [[ -f "$f" ]]; then
            sed 's/^Types:.*/Types: deb-src/' "$f" >"$tmp/parts/$(basename "$f")"
        fi
    done
    chown -R _apt "$tmp" 2>/dev/null || true
    apt_opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$tmp/parts"
        -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp/cache")
    say "fetching the FIX44 dictionary: apt-get source --download-only quickfix=$srcver (private lists in $tmp)"
    $sudo apt-get "${apt_opts[@]}" -qq update ||
        die "apt-get update of the deb-src entries failed; QuickFIX's spec/FIX44.xml is needed for its validation"
    (cd "$tmp/src" && $sudo apt-get "${apt_opts[@]}" -qq source --download-only "quickfix=$srcver") ||
        die "apt-get source quickfix=$srcver failed; QuickFIX's spec/FIX44.xml is needed for its validation"
    orig="$(ls "$tmp"/src/quickfix_*.orig.tar.* 2>/dev/null | head -n 1)"
    [[ -n "$orig" ]] || die "no quickfix_*.orig.tar.* in what apt-get source fetched: $(ls "$tmp/src")"
    mkdir -p "$out/spec"
    tar -xf "$orig" -C "$tmp" --wildcards '*/spec/FIX44.xml' ||
        die "$orig has no spec/FIX44.xml"
    cp "$(find "$tmp" -path '*/spec/FIX44.xml' | head -n 1)" "$dict.tmp"
    grep -q '<fix .*major=.4. .*minor=.4.' "$dict.tmp" || die "$dict.tmp is not a FIX 4.4 dictionary"
    mv "$dict.tmp" "$dict"
    say "data dictionary: $dict (from $(basename "$orig"))"
fi

# 3. The venue.
if make -s -q -C gateways/fixvenue OUT="$out" 2>/dev/null; then
    say "target/fixvenue/fixvenue is up to date"
else
    say "building target/fixvenue/fixvenue: make -C gateways/fixvenue OUT=$out"
    start=$(date +%s)
    make -C gateways/fixvenue OUT="$out" || die "the venue did not build (gateways/fixvenue/fixvenue.cpp)"
    say "built target/fixvenue/fixvenue in $(($(date +%s) - start)) s"
fi
usage="$("$out/fixvenue" --help 2>&1)" || die "$out/fixvenue --help failed: $usage"
[[ "$usage" == *"usage: fixvenue"* ]] || die "$out/fixvenue does not run: $usage"
