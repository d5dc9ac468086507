#!/usr/bin/env bash
# python -m tf_distill.cli.report with the repository's defaults; extra flags override them ("$@").
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 -m tf_distill.cli.report "$@"
