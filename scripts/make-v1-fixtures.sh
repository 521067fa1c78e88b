#!/usr/bin/env bash
# Writes the SQLCipher 3 databases of __test__/fixtures/v1/ the way sqlite3-cluster 1.x keyed
# them: the first statements of the session are exactly 1.x's
#   PRAGMA KEY = "x'<key>'"
#   PRAGMA CIPHER = 'aes-<bits>-cbc'
# (bits 128 when the app gave none), on SQLCipher 3 (Debian's `sqlcipher` 3.4.1 CLI:
# apt-get install sqlcipher). Every fixture holds the same deterministic content, so a test
# can recompute its checksum; the script checks each file reads back with 1.x's statements and
# that the AES-128 ones cannot be read without `PRAGMA cipher` (SQLCipher's default AES-256).
#
# Usage: scripts/make-v1-fixtures.sh [output dir]   (default: __test__/fixtures/v1)
# The files change on every run (SQLCipher draws a random salt and IVs); the content and the
# checksum do not.

set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here/__test__/fixtures/v1}
mkdir -p "$out"

command -v sqlcipher >/dev/null || { echo "sqlcipher CLI missing: apt-get install sqlcipher" >&2; exit 1; }
case $(sqlcipher -batch :memory: 'PRAGMA cipher_version;') in
  3.*) ;;
  *) echo "need SQLCipher 3.x (1.x's format), got: $(sqlcipher -batch :memory: 'PRAGMA cipher_version;')" >&2; exit 1 ;;
esac

# 1.x's two statements, in its order and spelling.
v1_keying() { # key bits
  printf 'PRAGMA KEY = "x'\''%s'\''";\n' "$1"
  printf "PRAGMA CIPHER = 'aes-%s-cbc';\n" "$2"
}

# sqlcipher on a file; SQLCipher 3.4 answers `PRAGMA cipher` with a deprecation notice row
# (it still applies the cipher), which 1.x's db.run() ignored and so do we.
v1cli() { # file
  sqlcipher -batch -bail "$1" | { grep -v '^PRAGMA cipher command is deprecated' || true; }
}

# Bytes on stdin as lowercase hex, one line.
hex() { od -An -v -tx1 | tr -d ' \n'; }

# Every byte value 00..ff once, as a blob literal.
all_bytes=$(for i in $(seq 0 255); do printf '%02x' "$i"; done)

content() {
  cat <<SQL
PRAGMA user_version = 7;
BEGIN;
CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE, data BLOB);
INSERT INTO t (id, name, data) VALUES
  (1, 'héllo wörld', X'$all_bytes'),
  (2, '日本語のテキスト', X''),
  (3, '😀 grinning face (4-byte UTF-8)', X'00'),
  (4, 'Ελληνικά — ünïcödé', X'deadbeef'),
  (5, 'עברית مرحبا', NULL);
-- 300 rows of 1024 deterministic bytes each: row i is 128 eight-hex-digit words,
-- word k = (i * 2654435761 + k * 40503) mod 2^32, the hex text stored as a blob.
WITH RECURSIVE
  n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300),
  w(i, k, s) AS (
    SELECT i, 0, '' FROM n
    UNION ALL
    SELECT i, k + 1, s || printf('%08x', (i * 2654435761 + k * 40503) % 4294967296) FROM w WHERE k < 128)
INSERT INTO t (id, name, data)
  SELECT 100 + i, printf('row %03d', i), CAST(s AS BLOB) FROM w WHERE k = 128;
CREATE INDEX t_data_prefix ON t (substr(data, 1, 16));
COMMIT;
SQL
}

# The same text the tests hash: one `id|name|hex(data)` line per row, by id.
dump_sql='SELECT id, name, hex(data) FROM t ORDER BY id;'
# The reference, from an unencrypted in-memory copy: 305 rows, and a checksum every fixture
# must match.
[ "$({ content; printf '%s\n' "$dump_sql"; } | sqlcipher -batch -bail :memory: | wc -l)" = 305 ] \
  || { echo "content: expected 305 rows" >&2; exit 1; }
checksum=$({ content; printf '%s\n' "$dump_sql"; } | sqlcipher -batch -bail :memory: | sha256sum | cut -d' ' -f1)

make_fixture() { # file key bits
  local file=$out/$1 key=$2 bits=$3
  rm -f "$file" "$file-journal" "$file-wal" "$file-shm"
  { v1_keying "$key" "$bits"; content; } | v1cli "$file"

  # Reads back with 1.x's statements.
  local got
  got=$({ v1_keying "$key" "$bits"; printf '%s\n' "$dump_sql"; } | v1cli "$file" | sha256sum | cut -d' ' -f1)
  local meta
  meta=$({ v1_keying "$key" "$bits"; echo 'PRAGMA user_version; SELECT count(*) FROM t; PRAGMA integrity_check; PRAGMA cipher_page_size;'; } \
    | v1cli "$file" | tr '\n' ' ')
  [ "$meta" = "7 305 ok 1024 " ] || { echo "$1: unexpected read-back: $meta" >&2; exit 1; }
  [ "$got" = "$checksum" ] || { echo "$1: checksum $got differs from $checksum" >&2; exit 1; }

  # Without `PRAGMA cipher` SQLCipher uses AES-256 and a 32-digit x'' key is then a passphrase:
  # the AES-128 files must not open that way.
  if [ "$bits" = 128 ]; then
    if printf 'PRAGMA KEY = "x'\''%s'\''";\nSELECT count(*) FROM t;\n' "$key" | sqlcipher -batch -bail "$file" >/dev/null 2>&1; then
      echo "$1: opened without PRAGMA cipher (should need aes-128-cbc)" >&2; exit 1
    fi
  fi
  # Independently of SQLCipher (when openssl >= 3 is there): page 1 decrypts with the key 1.x
  # meant (the raw key for aes-128 and 64 digits, PBKDF2-HMAC-SHA1 64000 of the text x'<key>'
  # for the 32-digit key with aes-256) to a header saying page size 1024, 48 reserved bytes.
  if command -v openssl >/dev/null && openssl kdf -help >/dev/null 2>&1; then
    local raw=$key algo=aes-$bits-cbc header
    if [ $((${#key} * 4)) != "$bits" ]; then
      raw=$(openssl kdf -keylen $((bits / 8)) -kdfopt digest:SHA1 -kdfopt "pass:x'$key'" \
        -kdfopt hexsalt:"$(dd if="$file" bs=16 count=1 status=none | hex)" -kdfopt iter:64000 PBKDF2 | tr -d ':\n')
    fi
    header=$(dd if="$file" bs=1 skip=16 count=$((1024 - 48 - 16)) status=none \
      | openssl enc -d -"$algo" -nopad -K "$raw" -iv "$(dd if="$file" bs=1 skip=$((1024 - 48)) count=16 status=none | hex)" \
      | hex)
    header=${header:0:16}
    [ "$header" = 0400010130402020 ] || { echo "$1: page 1 does not decrypt with the expected key ($header)" >&2; exit 1; }
  fi
  # And no file of this set is plain SQLite.
  if [ "$(dd if="$file" bs=16 count=1 status=none | hex)" = 53514c69746520666f726d6174203300 ]; then echo "$1: not encrypted" >&2; exit 1; fi
  echo "$1: ok ($(stat -c %s "$file") bytes, key $key, aes-$bits-cbc)"
}

make_fixture aes128.db 0123456789abcdef0123456789abcdef 128
make_fixture aes256.db 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff 256
make_fixture aes256-short-key.db 0123456789abcdef0123456789abcdef 256
# The 1.x app gave no bits: 1.x still ran PRAGMA CIPHER = 'aes-128-cbc'.
make_fixture nobits.db fedcba9876543210fedcba9876543210 128
echo "sha256 of '$dump_sql' output: $checksum"

# The file 1.x's own `npm test` (test-cluster.js) leaves at /tmp/test.cluster.sqlcipher: key of
# 32 zeros, bits 128, one empty table.
file=$out/test-cluster.sqlcipher
rm -f "$file"
{ v1_keying 00000000000000000000000000000000 128; echo 'CREATE TABLE IF NOT EXISTS meta (version TEXT);'; } | v1cli "$file"
got=$({ v1_keying 00000000000000000000000000000000 128; echo "SELECT count(*) FROM meta; SELECT name FROM sqlite_master;"; } | v1cli "$file" | tr '\n' ' ')
[ "$got" = "0 meta " ] || { echo "test-cluster.sqlcipher: unexpected read-back: $got" >&2; exit 1; }
echo "test-cluster.sqlcipher: ok ($(stat -c %s "$file") bytes, key 00000000000000000000000000000000, aes-128-cbc)"
