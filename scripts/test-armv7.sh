#!/usr/bin/env bash
# The Raspberry Pi (32-bit) check: see scripts/test-arm.sh.
exec bash "$(dirname "$0")/test-arm.sh" armv7
