#!/usr/bin/env bash
# Back up a nycmg node: its database and its data directory (config, keys,
# uploads, media). The search index is left out: `nycmg search reindex`
# rebuilds it. Safe while the node runs (SQLite's online backup API, pg_dump's
# snapshot). Restore steps: docs/operations.md.
#
#   deploy/backup.sh DATA_DIR OUTPUT_DIR
#
# Writes OUTPUT_DIR/nycmg-YYYYmmddTHHMMSSZ/ with nycmg.db (SQLite) or
# nycmg.pgdump (pg_dump custom format), and data.tar.gz. The backup holds the
# node's private keys and secret: keep it as safe as the node.
# NYCMG_PYTHON names the Python that has nycmg installed (default: the one
# next to `nycmg` on PATH); NYCMG_* settings in the environment apply as usual.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 DATA_DIR OUTPUT_DIR" >&2
  exit 2
fi
data=$(cd "$1" && pwd)
out=$2
if [ ! -f "$data/nycmg.toml" ]; then
  echo "backup: $data holds no node (no nycmg.toml)" >&2
  exit 1
fi

py=${NYCMG_PYTHON:-}
if [ -z "$py" ]; then
  nycmg_bin=$(command -v nycmg || true)
  if [ -n "$nycmg_bin" ] && [ -x "$(dirname "$nycmg_bin")/python" ]; then
    py="$(dirname "$nycmg_bin")/python"
  else
    py=python3
  fi
fi

# The node's own settings say where its database is (nycmg.toml, then NYCMG_*).
url=$("$py" -c 'import sys; from node.config import load_settings; print(load_settings(sys.argv[1]).database_url)' "$data")

umask 077
dest="$out/nycmg-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$dest"

case "$url" in
  sqlite*)
    db=${url#*:///}
    "$py" - "$db" "$dest/nycmg.db" <<'PY'
import sqlite3, sys
src, dst = sqlite3.connect(sys.argv[1]), sqlite3.connect(sys.argv[2])
with dst:
    src.backup(dst)  # a consistent copy, even with writers in WAL mode
dst.close()
src.close()
PY
    echo "database: SQLite $db -> $dest/nycmg.db"
    ;;
  postgresql*)
    pg_dump --format=custom --no-owner --file="$dest/nycmg.pgdump" "postgresql://${url#*://}"
    echo "database: PostgreSQL -> $dest/nycmg.pgdump"
    ;;
  *)
    echo "backup: unknown database URL scheme in ${url%%:*}" >&2
    exit 1
    ;;
esac

tar -C "$data" -czf "$dest/data.tar.gz" \
  --exclude=./nycmg.db --exclude=./nycmg.db-wal --exclude=./nycmg.db-shm \
  --exclude=./search .
echo "data: $data -> $dest/data.tar.gz"
echo "$dest"
