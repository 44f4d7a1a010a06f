#!/usr/bin/env bash
# The README's test command: prepares this machine (PostgreSQL 15 + pgvector, PyTorch, Chromium; see
# scripts/ci-setup.sh), installs the lockfile, and runs every suite on PGlite and PostgreSQL. CI runs it too.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export NEXT_TELEMETRY_DISABLED=1 TURBO_TELEMETRY_DISABLED=1
bash scripts/ci-setup.sh
# shellcheck source=/dev/null
. .ci/env
npm ci --no-audit --no-fund
npm test
