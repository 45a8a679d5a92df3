#!/usr/bin/env bash
# Installs the imagepipe binaries of a release: downloads the archive for this machine and the
# release's SHA256SUMS, checks the archive against it, and unpacks the binaries into a tool cache
# laid out as GitHub's @actions/tool-cache lays it out (<cache>/imagepipe/<version>/<arch>/ and a
# <arch>.complete marker), so that another job on the same runner downloads nothing. Prints the
# directory holding the binaries on stdout; on GitHub Actions it is also added to GITHUB_PATH.
#
# The root action.yml and every step action run this script; a Jenkins agent or a developer can
# run it the same way.
#
#   scripts/install.sh                 install (or reuse) the release
#   scripts/install.sh --if-missing    do nothing when the imagepipe binaries are on PATH already
#   scripts/install.sh --from-source   build this checkout instead, with rust-toolchain.toml's
#                                      pinned toolchain (needs rustup; minutes, not seconds)
#
# Environment (every one optional):
#   IMAGEPIPE_INSTALL_VERSION  the release, 1.2.3 or v1.2.3. Default: the version this script's
#                              own checkout declares in Cargo.toml, so an action used @v1 installs
#                              the release v1 points to.
#   IMAGEPIPE_DOWNLOAD_URL     where releases are, laid out as GitHub's releases/download:
#                              <url>/v<version>/<asset>. Default: GitHub. A mirror (an Artifactory
#                              generic remote of GitHub, a web server) serves runners without
#                              internet.
#   IMAGEPIPE_DOWNLOAD_TOKEN   a bearer token for that mirror. It reaches curl on its standard
#                              input, never its command line, and is masked in GitHub logs.
#   IMAGEPIPE_TOOL_CACHE       the cache; default RUNNER_TOOL_CACHE, then ~/.cache/imagepipe.
#   IMAGEPIPE_INSTALL_ARCH     x86_64 or aarch64; default this machine's (uname -m).
#
# Exit codes: 0 installed (or already there); 2 it could not be (each error says why).
set -euo pipefail

repo_url="https://github.com/imagepipe/imagepipe/releases/download"
binaries=(imagepipe-build imagepipe-tag imagepipe-scan imagepipe-publish imagepipe-replicate-check imagepipe-import imagepipe-fleet imagepipe-lifecycle)
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

on_github() { [ "${GITHUB_ACTIONS:-}" = "true" ]; }
die() {
  # A workflow command shows the error on the run's page; the plain line serves everyone else.
  if on_github; then
    local msg="${1//'%'/%25}"
    msg="${msg//$'\n'/%0A}"
    echo "::error title=imagepipe install::${msg}" >&2
  else
    echo "imagepipe install: error: $1" >&2
  fi
  exit 2
}
note() { echo "imagepipe install: $1" >&2; }
add_to_path() {
  if on_github && [ -n "${GITHUB_PATH:-}" ]; then
    echo "$1" >> "$GITHUB_PATH"
  fi
  echo "$1"
}

mode=release
case "${1:-}" in
  "") ;;
  --if-missing)
    missing=0
    for b in "${binaries[@]}"; do command -v "$b" >/dev/null || missing=1; done
    if [ "$missing" = 0 ]; then
      note "imagepipe is on PATH already ($(command -v imagepipe-build)); not installing"
      exit 0
    fi
    ;;
  --from-source) mode=source ;;
  *) die "unknown argument '$1' (use --if-missing or --from-source)" ;;
esac

if [ "$mode" = source ]; then
  # rustup picks the toolchain from rust-toolchain.toml in the working directory, so cargo runs
  # in the checkout, never in the caller's workspace (where another or no toolchain file is).
  command -v rustup >/dev/null || die "building from source needs rustup (for the toolchain rust-toolchain.toml pins); install it, or install a release instead"
  cd "$root"
  on_github && echo "::group::building imagepipe from source ($(rustup show active-toolchain 2>/dev/null | head -1))" >&2
  CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}" cargo build --release --locked --bins >&2
  on_github && echo "::endgroup::" >&2
  add_to_path "${CARGO_TARGET_DIR:-$root/target}/release"
  exit 0
fi

version="${IMAGEPIPE_INSTALL_VERSION:-}"
if [ -z "$version" ]; then
  # The version of this checkout: for a release tag, or the major tag moved onto it, that
  # release. Read from [workspace.package], the one place it is set.
  version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$root/Cargo.toml" 2>/dev/null | head -1)"
  [ -n "$version" ] || die "no version given and none found in $root/Cargo.toml; set the version input (IMAGEPIPE_INSTALL_VERSION)"
fi
version="${version#v}"
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] ||
  die "version '$version' is not a release version X.Y.Z (a major tag such as v1 is resolved by using the action @v1 without a version input)"

[ "$(uname -s)" = Linux ] || die "imagepipe releases are built for Linux only, and this runner runs $(uname -s); build from source instead"
arch="${IMAGEPIPE_INSTALL_ARCH:-$(uname -m)}"
case "$arch" in
  x86_64 | amd64 | X64) arch=x86_64 cache_arch=x64 ;;
  aarch64 | arm64 | ARM64) arch=aarch64 cache_arch=arm64 ;;
  *) die "no imagepipe release is built for the architecture '$arch' (only x86_64 and aarch64); build from source instead" ;;
esac
target="$arch-unknown-linux-musl"
asset="imagepipe-$version-$target.tar.gz"

cache="${IMAGEPIPE_TOOL_CACHE:-${RUNNER_TOOL_CACHE:-${HOME:-/tmp}/.cache/imagepipe}}"
dest="$cache/imagepipe/$version/$cache_arch"
if [ -f "$dest.complete" ]; then
  ok=1
  for b in "${binaries[@]}"; do [ -x "$dest/$b" ] || ok=0; done
  if [ "$ok" = 1 ]; then
    note "imagepipe $version ($target) from the tool cache $dest"
    add_to_path "$dest"
    exit 0
  fi
  note "the tool cache's $dest is incomplete; installing again"
fi

command -v curl >/dev/null || die "curl is needed to download imagepipe (apt-get install curl)"
command -v sha256sum >/dev/null || die "sha256sum is needed to check the download (coreutils)"
base="${IMAGEPIPE_DOWNLOAD_URL:-$repo_url}"
base="${base%/}"
url="$base/v$version"

if [ -n "${IMAGEPIPE_DOWNLOAD_TOKEN:-}" ] && on_github; then
  # On stderr: stdout carries only the installed directory, which the action reads.
  echo "::add-mask::$IMAGEPIPE_DOWNLOAD_TOKEN" >&2
fi
# Fetches $1 to $2. The token goes to curl as a config file on stdin, so it is in no process's
# command line. Prints curl's complaint (with the HTTP status) on failure.
fetch() {
  local err
  if ! err="$(
    {
      if [ -n "${IMAGEPIPE_DOWNLOAD_TOKEN:-}" ]; then
        printf 'header = "Authorization: Bearer %s"\n' "$IMAGEPIPE_DOWNLOAD_TOKEN"
      fi
    } | curl --config - --fail --silent --show-error --location --retry 3 --connect-timeout 30 \
      --output "$2" "$1" 2>&1
  )"; then
    if [ -n "${IMAGEPIPE_DOWNLOAD_TOKEN:-}" ]; then err="${err//"$IMAGEPIPE_DOWNLOAD_TOKEN"/***}"; fi
    echo "$err"
    return 1
  fi
}

work="$(mktemp -d)"
part=""
cleanup() { rm -rf "$work" ${part:+"$part"}; }
trap cleanup EXIT
start=$(date +%s%N)

if ! err="$(fetch "$url/SHA256SUMS" "$work/SHA256SUMS")"; then
  die "cannot download $url/SHA256SUMS: $err (is v$version released, and is the download URL right?)"
fi
# SHA256SUMS lines are `<sha256>  <name>` (or `*<name>` in binary mode).
want="$(awk -v a="$asset" '$2 == a || $2 == "*" a { print $1; exit }' "$work/SHA256SUMS")"
if [ -z "$want" ]; then
  listed="$(awk '{ sub(/^\*/, "", $2); printf "%s%s", sep, $2; sep = ", " }' "$work/SHA256SUMS")"
  die "release v$version has no $asset for $arch Linux: its SHA256SUMS lists ${listed:-nothing}"
fi
if ! err="$(fetch "$url/$asset" "$work/$asset")"; then
  die "cannot download $url/$asset: $err"
fi
got="$(sha256sum "$work/$asset" | cut -d' ' -f1)"
if [ "$got" != "$want" ]; then
  die "$asset: its SHA-256 is $got but the release's SHA256SUMS says $want; the download or the mirror is corrupt, and nothing was installed"
fi

# Unpacked beside the cache entry, then renamed into place, so no run ever sees half of it.
mkdir -p "$cache/imagepipe/$version"
part="$(mktemp -d "$dest.partial.XXXXXX")"
tar -xzf "$work/$asset" -C "$part" --strip-components=1 ||
  die "$asset: cannot unpack it"
for b in "${binaries[@]}"; do
  [ -x "$part/$b" ] || die "$asset: it holds no $b"
done
# A binary that does not start here (another architecture, a broken archive) is caught now,
# not in the step that needs it.
if ! said="$("$part/imagepipe-build" --imagepipe-version 2>&1)" || [[ "$said" != *" $version"* ]]; then
  die "$asset: imagepipe-build does not run here or is not $version (it says: ${said:-nothing})"
fi
rm -rf "$dest"
mv "$part" "$dest"
part=""
touch "$dest.complete"
ms=$(( ($(date +%s%N) - start) / 1000000 ))
note "imagepipe $version ($target) installed into $dest in ${ms} ms, SHA-256 checked against SHA256SUMS"
add_to_path "$dest"
