#!/usr/bin/env bash
# Cross-builds an ARM binary and runs it for real under qemu user mode with Debian bookworm's
# Node 18 for that architecture: the packed root package and the platform package are installed
# into an empty folder (offline, from the tarballs), then scripts/qemu-check.js runs an
# encrypted standalone round trip and a master and a client as two emulated processes.
# Downloads are cached under ~/.cache/sqlite3-cluster.
#
#   bash scripts/test-arm.sh armv7 | arm64     (SKIP_BUILD=1 reuses the binary in npm/<platform>)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE="${SQLITE3_CLUSTER_CACHE:-$HOME/.cache/sqlite3-cluster}"
case "${1:-}" in
  armv7) PLATFORM=linux-arm-gnueabihf; DEBARCH=armhf; QEMU_BIN=qemu-arm-static; CPU=arm ;;
  arm64) PLATFORM=linux-arm64-gnu; DEBARCH=arm64; QEMU_BIN=qemu-aarch64-static; CPU=arm64 ;;
  *) echo "usage: $0 armv7|arm64" >&2; exit 2 ;;
esac
BINARY="npm/$PLATFORM/sqlite3-cluster.$PLATFORM.node"

if [ "${SKIP_BUILD:-}" != 1 ] || [ ! -f "$BINARY" ]; then bash scripts/build-target.sh "$1"; fi
echo "$1 binary: $(stat -c %s "$BINARY") bytes, glibc floor $(bash scripts/glibc-floor.sh "$BINARY")"

if ! command -v "$QEMU_BIN" >/dev/null; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends qemu-user-static
fi

# Debian's Node and its libraries, unpacked into a private root (no dpkg architecture change).
R="$CACHE/$DEBARCH"
if [ ! -x "$R/root/usr/bin/node" ]; then
  mkdir -p "$R/apt/lists/partial" "$R/apt/cache/archives/partial" "$R/apt/etc" "$R/debs" "$R/root"
  # The mirror this machine's apt already uses (deb822 or one-line format).
  mirror=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -1 || true)
  [ -n "$mirror" ] || mirror=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | head -1 || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  echo "deb [arch=$DEBARCH signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror bookworm main" > "$R/apt/etc/sources.list"
  O=(-o APT::Architecture=$DEBARCH -o APT::Architectures=$DEBARCH -o "Dir::State::Lists=$R/apt/lists"
     -o "Dir::Cache=$R/apt/cache" -o "Dir::Etc::SourceList=$R/apt/etc/sources.list"
     -o Dir::Etc::SourceParts=/dev/null -o Dir::State::status=/dev/null)
  apt-get "${O[@]}" update -qq
  (cd "$R/debs" && apt-get "${O[@]}" download nodejs libnode108 libc6 libgcc-s1 gcc-12-base libstdc++6 \
     libbrotli1 libc-ares2 libicu72 libnghttp2-14 libssl3 libuv1 zlib1g \
     node-cjs-module-lexer node-acorn node-undici)
  for d in "$R"/debs/*.deb; do dpkg -x "$d" "$R/root"; done
  # Merged /usr, as on an installed system: the loader looks in /usr/lib/<triplet> only.
  cp -an "$R/root/lib/." "$R/root/usr/lib/"
fi
QEMU="$QEMU_BIN -L $R/root $R/root/usr/bin/node"

# Pack both packages and install them offline into an empty folder, as a user on a Pi would.
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/stage" "$WORK/app"
cp "npm/$PLATFORM/package.json" "npm/$PLATFORM/README.md" "$BINARY" "$WORK/stage/"
(cd "$WORK/stage" && npm pack --silent --ignore-scripts --pack-destination "$WORK" >/dev/null)
npm pack --silent --ignore-scripts --pack-destination "$WORK" >/dev/null
VERSION=$(node -p "require('./package.json').version")
# --force: npm checks os/cpu against this (x64) machine; the files are for the emulated one.
cd "$WORK/app"
echo '{"name":"pi-app","version":"1.0.0","private":true}' > package.json
npm install --loglevel=error --offline --no-audit --no-fund --force --os=linux --cpu=$CPU --libc=glibc \
  "$WORK/sqlite3-cluster-$PLATFORM-$VERSION.tgz" "$WORK/sqlite3-cluster-$VERSION.tgz"
cp "$ROOT/scripts/qemu-check.js" .
$QEMU qemu-check.js "$QEMU"
