#!/usr/bin/env bash
# Usage: scripts/buf.sh ARGS...
#
# Runs the buf CLI pinned in tools/buf/package.json from the repository root,
# installing it first (npm ci, from tools/buf/package-lock.json) when it is
# missing or older than the lock file. Examples:
#   scripts/buf.sh generate
#   scripts/buf.sh lint
#   scripts/buf.sh format -d --exit-code
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tooldir="$root/tools/buf"
buf="$tooldir/node_modules/.bin/buf"
# npm ci writes this file; it is older than the lock when the pin was bumped.
installed="$tooldir/node_modules/.package-lock.json"

if [ ! -x "$buf" ] || [ ! -f "$installed" ] || [ "$tooldir/package-lock.json" -nt "$installed" ]; then
	if ! command -v npm >/dev/null 2>&1; then
		echo "scripts/buf.sh: npm is required to install buf into tools/buf" >&2
		exit 1
	fi
	echo "scripts/buf.sh: installing buf into tools/buf/node_modules" >&2
	(cd "$tooldir" && npm ci --silent --no-audit --no-fund)
fi

cd "$root"
exec "$buf" "$@"
