#!/usr/bin/env bash
# tf_distill vs TextBrewer, one command: makes the TextBrewer environment (bench/requirements-textbrewer.txt, a
# virtual environment of its own at $TEXTBREWER_VENV) if it is missing, then runs bench/textbrewer_compare.py, which
# starts the TextBrewer side as its child process. Extra arguments go to textbrewer_compare.py, e.g.
#     bench/textbrewer_compare.sh --steps=10 --output=bench/RESULTS.md
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${TEXTBREWER_VENV:-${TMPDIR:-/tmp}/tf_distill_textbrewer_venv}"
if ! "$venv/bin/python" -c "import torch, textbrewer" 2>/dev/null; then
  python3 -m venv --system-site-packages "$venv"
  "$venv/bin/pip" install --quiet -r "$here/requirements-textbrewer.txt"
fi
exec python3 "$here/textbrewer_compare.py" --torch_python="$venv/bin/python" "$@"
