#!/usr/bin/env bash
# python -m tf_distill.cli.augment: writes an augmented copy of a split for inspection; flags as given ("$@").
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 -m tf_distill.cli.augment "$@"
