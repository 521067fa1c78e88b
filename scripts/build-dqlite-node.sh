#!/usr/bin/env bash
# Builds the dqlite node program (dqlite-node/, docs/dqlite.md#running-nodes) and puts it at
# dqlite-node/bin/sqlite3-cluster-node. It links Debian's libdqlite, so it needs
#   apt-get install libdqlite-dev
# The addon never needs it, and never links it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f /usr/include/dqlite.h ]; then
  echo "build-dqlite-node: libdqlite's header is missing: apt-get install libdqlite-dev (Debian 12 / Ubuntu 22.04 or later)" >&2
  exit 1
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sqlite3-cluster/target}"
cargo build --release --manifest-path dqlite-node/Cargo.toml
mkdir -p dqlite-node/bin
cp "$CARGO_TARGET_DIR/release/sqlite3-cluster-node" dqlite-node/bin/sqlite3-cluster-node
echo "built dqlite-node/bin/sqlite3-cluster-node"
