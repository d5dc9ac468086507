#!/usr/bin/env bash
# python -m tf_distill.cli.chain (teacher -> assistant -> student) with the repository's defaults; extra flags override them ("$@").
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 -m tf_distill.cli.chain --flagfile=flags/chain.flags "$@"
