"""What the programs print: quiet by default, everything with absl's standard `--verbosity` (`-v`).

Verbosity follows absl's levels: -1 warnings (the default here; absl's own default is 0), 0 info, 1 debug.

- Default: Python warnings and errors (ours, TensorFlow's, absl's) and TensorFlow C++ errors. Hidden: absl/TensorFlow
  INFO lines (tfds's "Done writing ..." among them), TensorFlow C++ INFO and WARNING lines, tfds progress bars, and on
  a machine without an NVIDIA device node, the GPU probe (`failed call to cuInit: ... CUDA error`).
- Around TFLite work (`quiet_tflite`: export_student, verify-export, report) also the lines the converter and the
  interpreter print on every run, and tf.lite.Interpreter's deprecation warning.
- `--verbosity=0` or more: all of it, as TensorFlow prints it.

Three things happen before TensorFlow loads, in `tf_distill/__init__.py`, so they read `--verbosity` from `sys.argv`
(absl parses flags only later; a `--verbosity` inside a `--flagfile` reaches `configure` only):
`TF_CPP_MIN_LOG_LEVEL`; `TF_ENABLED_DEVICE_TYPES=CPU` when no GPU exists, so TensorFlow never calls cuInit; and the
import itself, because the C++ libraries log while they load, before TensorFlow reads `TF_CPP_MIN_LOG_LEVEL`
(tensorflow/tensorflow#100442: `cudart_stub.cc] Could not find cuda drivers`), so `import_tensorflow` drops from
stderr the absl-format lines below that level. Variables the user set in the environment win over the default;
an explicit `--verbosity` wins over them.
"""

import contextlib
import glob
import logging
import os
import re
import sys
import tempfile
import warnings
from typing import Callable, Optional, Sequence

QUIET = -1  # absl's WARNING level
_CPP_LEVELS = "IWEF"  # absl C++ severities; TF_CPP_MIN_LOG_LEVEL counts in them
# absl C++ prefix `I0000 00:00:1796286811.031798    3146 cudart_stub.cc:31] `, and the line it prints before init.
_CPP_LINE = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^ \]]+:\d+\] ")
_BEFORE_INIT_NOTICE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# Printed on every TFLite conversion or interpreter start, whatever the log level: the MLIR quantizer's settings,
# LiteRT's delegate notice, and an error-level oneDNN line (printed even on AVX-512 machines) that TensorFlow follows
# with its fallback kernel.
_TFLITE_NOISE = (re.compile(r"^fully_quantize: \d"), re.compile(r"^INFO: Created TensorFlow Lite XNNPACK delegate"),
                 re.compile(r"^E\d{4} .*\] oneDNN supports DT_INT64 only on platforms with AVX-512"))
_INTERPRETER_DEPRECATION = r"\s*Warning: tf\.lite\.Interpreter is deprecated"


def requested_verbosity(argv: Sequence[str]) -> Optional[int]:
  """The last `--verbosity=N`, `--verbosity N`, `-v N` or `-v=N` in `argv` (before `--`); None when absent."""
  value = None
  args = iter(argv)
  for arg in args:
    if arg == "--":
      break
    name, sep, text = arg.lstrip("-").partition("=")
    if arg.startswith("-") and name in ("v", "verbosity"):
      try:
        value = int(text if sep else next(args, ""))
      except ValueError:
        pass  # absl reports the bad value when it parses the flags
  return value


_verbosity = requested_verbosity(sys.argv[1:])


def verbosity() -> int:
  """The verbosity in effect: the last `configure`d, else the one in `sys.argv`, else QUIET."""
  return QUIET if _verbosity is None else _verbosity


def shows_info() -> bool:
  return verbosity() >= 0


def keras_verbose() -> int:
  """Keras `fit` verbosity: the live progress bar (1) on a terminal, one line per epoch (2) when stdout is a file or
  pipe. tf_keras's Progbar counts every POSIX stdout as a terminal, so left at 1 it writes a `\r` line per batch
  into logs."""
  return 1 if sys.stdout.isatty() else 2


def has_gpu_device() -> bool:
  """Whether an NVIDIA GPU is visible to this machine (Linux device nodes, or WSL's /dev/dxg)."""
  return bool(glob.glob("/dev/nvidia[0-9]*")) or os.path.exists("/dev/dxg")


def before_tensorflow() -> None:
  """Sets the environment TensorFlow reads when it loads; call before its first import."""
  explicit = _verbosity is not None
  set_env = os.environ.__setitem__ if explicit else os.environ.setdefault
  set_env("TF_CPP_MIN_LOG_LEVEL", "0" if shows_info() else "2")
  if not shows_info() and not has_gpu_device():
    os.environ.setdefault("TF_ENABLED_DEVICE_TYPES", "CPU")  # no GPU to find: skip the probe and its cuInit error


def kept_import_lines(text: str, min_level: int) -> str:
  """`text` without the absl C++ lines of severity below `min_level` (0 info .. 3 fatal) nor absl's before-init
  notice; everything else (Python warnings, tracebacks) is kept in order."""
  kept = []
  for line in text.splitlines(keepends=True):
    match = _CPP_LINE.match(line)
    if line.rstrip("\n") == _BEFORE_INIT_NOTICE or (match and _CPP_LEVELS.index(match.group(1)) < min_level):
      continue
    kept.append(line)
  return "".join(kept)


def kept_tflite_lines(text: str, min_level: int) -> str:
  """`kept_import_lines`, also without the lines TFLite's converter and interpreter print on every run
  (`_TFLITE_NOISE`)."""
  return "".join(line for line in kept_import_lines(text, min_level).splitlines(keepends=True)
                 if not any(pattern.search(line) for pattern in _TFLITE_NOISE))


@contextlib.contextmanager
def _stderr_held(kept: Callable[[str], str]):
  """Holds stderr (file descriptor 2, so C++ and subprocess output too) in a temporary file during the block, then
  writes back `kept(text)`."""
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile(mode="w+b") as held:
    os.dup2(held.fileno(), 2)
    try:
      yield
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      held.seek(0)
      sys.stderr.write(kept(held.read().decode("utf-8", "replace")))
      sys.stderr.flush()


def _min_cpp_level() -> int:
  return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") or 0)


def import_tensorflow() -> None:
  """Imports TensorFlow with stderr held (`_stderr_held`) and written back as `kept_import_lines` keeps it. Does a
  plain import when TF_CPP_MIN_LOG_LEVEL is 0 or TensorFlow is loaded."""
  min_level = _min_cpp_level()
  if "tensorflow" in sys.modules or min_level <= 0:
    import tensorflow  # pylint: disable=import-outside-toplevel,unused-import
    return
  with _stderr_held(lambda text: kept_import_lines(text, min_level)):
    import tensorflow  # pylint: disable=import-outside-toplevel,unused-import,redefined-outer-name


@contextlib.contextmanager
def quiet_tflite():
  """For a block that converts or runs TFLite models (export, verify-export, report): stderr comes back as
  `kept_tflite_lines` keeps it, and tf.lite.Interpreter's deprecation warning (raised inside TensorFlow's own
  calibrator) is not shown. Everything passes at `--verbosity=0` or more."""
  if shows_info():
    yield
    return
  min_level = _min_cpp_level()
  with warnings.catch_warnings(), _stderr_held(lambda text: kept_tflite_lines(text, min_level)):
    warnings.filterwarnings("ignore", message=_INTERPRETER_DEPRECATION, category=UserWarning)
    yield


def configure(level: Optional[int] = None) -> None:
  """Applies a verbosity to Python logging (absl's and TensorFlow's loggers) and, through `shows_info`, to tfds's
  progress bars (`tfds_builders.prepare`).

  Call once flags are parsed, first thing in a program's main. `level` None: the `--verbosity` the user gave
  (command line or flagfile), else QUIET; a library caller may pass an absl level.
  """
  global _verbosity  # pylint: disable=global-statement
  if level is None:
    from absl import flags  # pylint: disable=import-outside-toplevel
    given = flags.FLAGS.is_parsed() and "verbosity" in flags.FLAGS and flags.FLAGS["verbosity"].present
    level = flags.FLAGS.verbosity if given else QUIET
  _verbosity = level
  from absl import logging as absl_logging  # pylint: disable=import-outside-toplevel
  absl_logging.set_verbosity(level)
  logging.getLogger("tensorflow").setLevel(absl_logging.converter.absl_to_standard(level))


def phase(title: str) -> None:
  """One header line per phase of a program (`== teacher: training -> runs/teacher`), always shown."""
  print(f"== {title}", flush=True)


def info(message: str) -> None:
  """A line that matters to the user (e.g. what the teacher cache did), always shown."""
  print(message, flush=True)
