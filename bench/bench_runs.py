"""What the bench scripts that drive scripts/*.sh share: a preset's no-distillation twin, running one command with
its log, reading a finished run's test accuracy (a run with eval_results.json is reused, a teacher only if its
config.json agrees with the flags asked for), and mean ± sample sd over seeds."""

import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Appended to a preset: the same student trained on hard labels only, without the preset's transfer set or teacher
# cache (`--kd_loss=ce` for every twin, whatever its preset's soft-label loss). A preset with --stages gets their
# epochs as --num_train_epochs (twin_flags).
NO_DISTILLATION = ("--alpha=0", "--intermediate_matches=", "--stages=", "--augmentation=", "--teacher_cache=off",
                   "--kd_loss=ce")


def preset_setting(flagfile, name):
  """The value `flagfile` (relative to the repository root) itself gives --`name`, or None."""
  with open(os.path.join(REPO, flagfile), encoding="utf-8") as f:
    values = [line.strip().partition("=")[2] for line in f if line.strip().startswith(f"--{name}=")]
  return values[-1] if values else None


def epochs_of_stages(stages):
  """The epochs of a --stages value: intermediate:2,prediction:2 -> 4."""
  return sum(int(stage.split(":")[1]) for stage in stages.split(","))


def stage_epochs(flagfile):
  """The epochs of the preset's own --stages, or None without stages."""
  stages = preset_setting(flagfile, "stages")
  return epochs_of_stages(stages) if stages else None


def twin_flags(flagfile):
  """The flags after `--flagfile=<flagfile>` that make its no-distillation twin."""
  epochs = stage_epochs(flagfile)
  return list(NO_DISTILLATION) + ([f"--num_train_epochs={epochs}"] if epochs else [])


def run_logged(command, log_path):
  """Runs `command` in the repository root, its output to `log_path`; a failure stops the bench naming the log."""
  os.makedirs(os.path.dirname(log_path), exist_ok=True)
  start = time.time()
  with open(log_path, "w", encoding="utf-8") as log:
    result = subprocess.run(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, check=False)
  if result.returncode:
    raise SystemExit(f"error: {' '.join(command)} failed (exit {result.returncode}); see {log_path}")
  print(f"{os.path.basename(os.path.dirname(log_path))}/{os.path.basename(log_path)}: {time.time() - start:.0f} s",
        file=sys.stderr)


def is_finished(run_dir):
  return os.path.isfile(os.path.join(REPO, run_dir, "eval_results.json"))


def eval_results(run_dir):
  with open(os.path.join(REPO, run_dir, "eval_results.json"), encoding="utf-8") as f:
    return json.load(f)


def test_accuracy(run_dir):
  """The run's test score: accuracy, or its task's metric (eval_results.json's "metric", e.g. a tagger's f1)."""
  results = eval_results(run_dir)
  return results[f"test_{results.get('metric', 'accuracy')}"]


def fine_tuned_teacher(run_dir, export_dir, train_flags):
  """Fine-tunes a teacher into `run_dir` (`scripts/train_teacher.sh` with `train_flags`, unless finished) and exports it
  under `export_dir` (unless there); returns the export, `export_dir`/teacher. Logs: `run_dir`.log, `export_dir`.log."""
  if is_finished(run_dir):
    refuse_other_config(run_dir, train_flags)
  else:
    run_logged(["scripts/train_teacher.sh", *train_flags, f"--output_dir={run_dir}"],
               os.path.join(REPO, run_dir + ".log"))
  export = os.path.join(export_dir, "teacher")
  if not os.path.isdir(os.path.join(REPO, export)):
    run_logged(["scripts/export_teacher.sh", f"--output_dir={run_dir}", f"--export_dir={export_dir}"],
               os.path.join(REPO, export_dir + ".log"))
  return export


def refuse_other_config(run_dir, flags):
  """Stops the bench when a finished run's config.json disagrees with a `--name=value` in `flags` that it records, so
  a reused run is never silently one trained with other settings."""
  with open(os.path.join(REPO, run_dir, "config.json"), encoding="utf-8") as f:
    recorded = {name: value for section in json.load(f).values() for name, value in section.items()}
  for flag in flags:
    name, _, text = flag.lstrip("-").partition("=")
    if name in recorded and not _same_value(text, recorded[name]):
      raise SystemExit(f"error: {run_dir} was trained with --{name}={recorded[name]}, not {text}; delete it or use "
                       "another --work_dir")


def _same_value(text, value):
  if value is None:
    return text in ("", "None")
  if isinstance(value, bool):
    return text.lower() in ("true", "1") if value else text.lower() in ("false", "0")
  if isinstance(value, (int, float)):
    try:
      return float(text) == value
    except ValueError:
      return False
  return text == str(value)


def mean_sd(values):
  """(mean, sample sd) of `values`; sd is nan for one value."""
  mean = statistics.mean(values)
  sd = statistics.stdev(values) if len(values) > 1 else float("nan")
  return mean, sd


def mean_sd_text(values, fmt=".4f"):
  """"mean ± sd" of `values` in `fmt` (e.g. "+.2f" for signed drops); the mean alone for one value."""
  mean, sd = mean_sd(values)
  mean = 0.0 if abs(mean) < 1e-9 else mean  # float noise of an exact 0 prints as 0.00, not -0.00
  return f"{mean:{fmt}}" + (f" ± {sd:{fmt.lstrip('+')}}" if len(values) > 1 else "")


def publish(text, output=None):
  """Prints the table text and, with `output`, writes it there (relative to the repository root)."""
  print(text)
  if output:
    with open(os.path.join(REPO, output), "w", encoding="utf-8") as f:
      f.write(text)
