"""tf_distill.machine names the CPU from a cpuinfo file (here one the test writes)."""

import os

from tf_distill import machine

CPUINFO = """processor\t: 0
cpu family\t: 6
model\t\t: 207
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse avx2 fma avx512f avx512_vnni amx_tile

processor\t: 1
cpu family\t: 6
model\t\t: 207
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse avx2 fma avx512f avx512_vnni amx_tile
"""


def test_cpu_info_reads_model_and_extensions(tmp_path):
  path = tmp_path / "cpuinfo"
  path.write_text(CPUINFO)
  assert machine.cpu_info(str(path)) == {"model": "Intel(R) Xeon(R) Processor", "family_model": "family 6 model 207",
                                         "extensions": "avx2, fma, avx512f, avx512_vnni, amx_tile"}
  assert machine.describe(str(path)) == (f"Intel(R) Xeon(R) Processor (family 6 model 207), {os.cpu_count()} cores; "
                                         "avx2, fma, avx512f, avx512_vnni, amx_tile")


def test_unreadable_cpuinfo_says_unknown(tmp_path):
  info = machine.cpu_info(str(tmp_path / "missing"))
  assert info["model"] == "unknown"
  assert info["extensions"].startswith("none of avx2")
