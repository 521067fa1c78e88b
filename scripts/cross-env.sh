# Sourced by the build and test scripts: a cross toolchain for the prebuilt binaries.
# zig (from PyPI) links against glibc 2.17, so the binaries load on every Raspberry Pi OS since
# buster and every x86_64 Linux of the last decade. Cached under ~/.cache/sqlite3-cluster.
set -euo pipefail
CACHE="${SQLITE3_CLUSTER_CACHE:-$HOME/.cache/sqlite3-cluster}"
VENV="$CACHE/zig-venv"
if [ ! -x "$VENV/bin/cargo-zigbuild" ]; then
  python3 -m venv "$VENV" 2>/dev/null || { apt-get update -qq && apt-get install -y -qq python3-venv && python3 -m venv "$VENV"; }
  "$VENV/bin/pip" install --quiet ziglang cargo-zigbuild
fi
mkdir -p "$CACHE/bin"
cat > "$CACHE/bin/zig" <<SHIM
#!/bin/sh
exec "$VENV/bin/python" -m ziglang "\$@"
SHIM
chmod +x "$CACHE/bin/zig"
export PATH="$CACHE/bin:$VENV/bin:$PATH"
export CARGO_TARGET_DIR="${SQLITE3_CLUSTER_CROSS_TARGET:-$CACHE/cross-target}"
