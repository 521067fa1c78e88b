#!/usr/bin/env bash
# The highest glibc symbol version a binary needs (any ELF architecture): its glibc floor.
set -euo pipefail
readelf --version-info --wide "$1" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1
