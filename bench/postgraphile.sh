#!/usr/bin/env bash
# Serves PostGraphile v4 over the benchmark's database, for the `postgraphile360`
# comparison (see README, Benchmarks). Installs it from npm into target/ on first use.
#   bench/postgraphile.sh DATABASE_URL [PORT]    (default port 5055; stop with Ctrl-C)
# It connects as the role in DATABASE_URL (the owner: no row-level security, which only
# flatters PostGraphile) and exposes the `public` schema with its default options.
set -euo pipefail
url=${1:?usage: bench/postgraphile.sh DATABASE_URL [PORT]}
port=${2:-5055}
dir=target/postgraphile
if [ ! -x "$dir/node_modules/.bin/postgraphile" ]; then
  npm install --prefix "$dir" --no-audit --no-fund postgraphile@4
fi
NODE_ENV=production exec "$dir/node_modules/.bin/postgraphile" -c "$url" -s public \
  --host 127.0.0.1 --port "$port" --disable-query-log
