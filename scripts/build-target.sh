#!/usr/bin/env bash
# Builds the prebuilt binary for one platform and puts it into its npm/ package:
#   scripts/build-target.sh x64 | armv7 | arm64
# Every binary is linked against glibc 2.17 (zig), then its highest required glibc symbol
# version is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/cross-env.sh
case "${1:-}" in
  x64) target=x86_64-unknown-linux-gnu; platform=linux-x64-gnu ;;
  armv7) target=armv7-unknown-linux-gnueabihf; platform=linux-arm-gnueabihf ;;
  arm64) target=aarch64-unknown-linux-gnu; platform=linux-arm64-gnu ;;
  *) echo "usage: $0 x64|armv7|arm64" >&2; exit 2 ;;
esac
rustup target list --installed | grep -qx "$target" || rustup target add "$target"
npx napi build --platform --release --no-js --dts native.d.ts --target "$target.2.17" --cross-compile \
  --output-dir "npm/$platform"
rm -f "npm/$platform/native.d.ts"
file="npm/$platform/sqlite3-cluster.$platform.node"
echo "$file: $(stat -c %s "$file") bytes, glibc floor $(bash scripts/glibc-floor.sh "$file")"
