#!/usr/bin/env bash
# Usage: scripts/check-generated.sh
#
# Fails when the proto files do not pass buf lint or buf format, or when gen/
# does not match what `scripts/buf.sh generate` produces from proto/ (stale
# or hand-edited generated code). It regenerates gen/ in place, so after a
# failure the working tree already holds the fresh output to review.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

scripts/buf.sh lint
scripts/buf.sh format -d --exit-code
scripts/buf.sh generate

changes="$(git status --porcelain --untracked-files=all -- gen/)"
if [ -n "$changes" ]; then
	{
		echo "check-generated: gen/ is out of date with proto/ (stale or hand-edited generated code):"
		echo "$changes"
		echo "Run scripts/buf.sh generate and commit gen/; never edit files under gen/ by hand."
	} >&2
	exit 1
fi
echo "check-generated: gen/ is up to date"
