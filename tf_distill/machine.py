"""The CPU a figure was measured on: its model, family/model numbers and the vector and matrix extensions that
decide TensorFlow's and LiteRT's kernels. Figures for one seed repeat on the same CPU type; on another CPU type
they move within the seed spread, so every report and benchmark names the CPU next to its numbers."""

import os
from typing import Dict

EXTENSIONS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_info(path: str = "/proc/cpuinfo") -> Dict[str, str]:
  """{"model": model name, "family_model": "family F model M", "extensions": the EXTENSIONS present}; "unknown"
  fields where `path` cannot be read (not Linux)."""
  fields = {}
  try:
    with open(path, encoding="utf-8") as f:
      for line in f:
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
  except OSError:
    pass
  present = set(fields.get("flags", "").split())
  return {"model": fields.get("model name", "unknown"),
          "family_model": f"family {fields.get('cpu family', '?')} model {fields.get('model', '?')}",
          "extensions": ", ".join(e for e in EXTENSIONS if e in present) or "none of " + ", ".join(EXTENSIONS)}


def describe(path: str = "/proc/cpuinfo") -> str:
  """One line, e.g. "Intel(R) Xeon(R) Processor (family 6 model 207), 2 cores; avx2, fma, avx512f, avx512_vnni"."""
  info = cpu_info(path)
  return f"{info['model']} ({info['family_model']}), {os.cpu_count()} cores; {info['extensions']}"
