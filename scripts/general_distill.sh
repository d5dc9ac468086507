#!/usr/bin/env bash
# python -m tf_distill.cli.general_distill with the TinyBERT-4 recipe (flags/general_tinybert4.flags) on the builtin
# corpus; another recipe: --flagfile=flags/general_minilm.flags; your text: --corpus=FILE_OR_DIR ("$@" overrides).
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 -m tf_distill.cli.general_distill --flagfile=flags/general_tinybert4.flags "$@"
