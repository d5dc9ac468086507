"""Post-training against quantisation-aware full int8 (issue 31's table): float Keras, dynamic-range int8,
post-training full int8 and QAT full int8 of the same students, over seeds, with size and batch-1 latency.

    python3 bench/qat.py --task=rotten_tomatoes --student=bert2 --seeds=1,2,3 --output=bench/QAT_RT_BERT2.md
    # smoke run at a tiny budget:
    python3 bench/qat.py --work_dir=/tmp/qat_smoke --task=rotten_tomatoes --student=bert2 --seeds=1 \\
        --max_train_examples=64 --teacher_max_train_examples=64 --latency_examples=20

Per task the teacher is fine-tuned for one epoch (seed 1) and exported, unless `<work_dir>/<task>/teacher` is
finished or `--teacher_model` names an export. Per seed:
1. the float student: `scripts/distill.sh` with the student's preset (bert2: flags/distill.flags with `--augmentation=`, bilstm:
   flags/bilstm.flags) and `--seed`;
2. its quantisation-aware continuation: the same command with `--student_init_run=<the float run> --stages=qat:1`
   (`--student_init_from_layers=` as the weights come from the run), one more epoch with int8 simulated;
3. both exported with float32, dynamic-range int8 and full_int8 (`export_student`, calibrated on 300 training
   examples, the threshold lifted so every file is kept), each file's test accuracy from the LiteRT interpreter.
A finished run or export is reused. The table gives mean ± sample sd over the seeds of the test accuracy, of its
drop from the float student in points (each seed against its own float student), and the file size; latency is
the LiteRT interpreter on single test examples at their real lengths with 1 and 2 threads, the files of the first
seed timed round-robin in one process (compare within the table: absolute times move with machine load).
"""

import argparse
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_runs import REPO, fine_tuned_teacher, is_finished, mean_sd, publish, run_logged  # noqa: E402

# The labelled data (and the extra flags' transfer set): these tables predate flags/distill.flags' augmentation.
PRESETS = {"bert2": ["--flagfile=flags/distill.flags", "--augmentation="], "bilstm": ["--flagfile=flags/bilstm.flags"]}
THRESHOLD_FREE = 100.0  # points: keep every file, the table says what it lost


def teacher(args):
  if args.teacher_model:
    return args.teacher_model
  flags = [f"--task_name={args.task}", "--num_train_epochs=1", "--seed=1"]
  if args.teacher_max_train_examples:
    flags.append(f"--max_train_examples={args.teacher_max_train_examples}")
  root = os.path.join(args.work_dir, args.task)
  return fine_tuned_teacher(os.path.join(root, "teacher"), os.path.join(root, "export"), flags)


def distill(args, teacher_export, seed, qat):
  """The float student of `seed`, or (qat) its quantisation-aware continuation; returns the run dir."""
  root = os.path.join(args.work_dir, args.task, args.student)
  float_run = os.path.join(root, f"float_s{seed}")
  run_dir = os.path.join(root, f"qat_s{seed}") if qat else float_run
  if is_finished(run_dir):
    return run_dir
  flags = [*PRESETS[args.student], f"--task_name={args.task}", f"--teacher_model={teacher_export}",
           f"--seed={seed}", f"--output_dir={run_dir}"] + args.extra
  if args.max_train_examples:
    flags.append(f"--max_train_examples={args.max_train_examples}")
  if qat:
    flags += [f"--student_init_run={float_run}", "--student_init_from_layers=", "--stages=qat:1"]
  run_logged(["scripts/distill.sh", *flags], os.path.join(REPO, run_dir + ".log"))
  return run_dir


def export(run_dir, name):
  """(parity.json of the run's float32, int8 and full_int8 files, their paths by variant)."""
  from tf_distill.export import parity, run_export  # pylint: disable=import-outside-toplevel
  export_dir = os.path.join(REPO, os.path.dirname(run_dir), "export")
  tflite_root = os.path.join(export_dir, f"{name}_tflite")
  if os.path.isdir(tflite_root):
    version = max(os.listdir(tflite_root), key=int)
    report = parity.read_report(os.path.join(tflite_root, version))
  else:
    report = run_export.export_student(os.path.join(REPO, run_dir), export_dir, name,
                                       tflite=("float32", "int8", "full_int8"),
                                       max_accuracy_drop=THRESHOLD_FREE).report
  return report


def latencies(files, args):
  """{(variant, threads): median ms} for the .tflite `files` {variant: path}, timed round-robin."""
  from tf_distill.report import Timed, round_robin_latencies, single_examples  # pylint: disable=import-outside-toplevel
  from tf_distill.export import run_export, tflite  # pylint: disable=import-outside-toplevel
  from tf_distill.run_dir import RunDir  # pylint: disable=import-outside-toplevel
  run_dir = os.path.join(REPO, args.work_dir, args.task, args.student, "float_s" + args.seeds.split(",")[0])
  examples = run_export.split_examples(RunDir(run_dir).data_config(), "test", args.latency_examples)[1]
  singles = single_examples(examples, args.latency_examples)
  keys = [(variant, threads) for variant in files for threads in (1, 2)]
  timed = [Timed(tflite.TFLiteClassifier(files[variant], num_threads=threads), singles) for variant, threads in keys]
  return {key: latency.median_ms for key, latency in zip(keys, round_robin_latencies(timed, args.rounds))}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--task", default="rotten_tomatoes", help="task_name of the runs")
  parser.add_argument("--student", default="bert2", choices=sorted(PRESETS))
  parser.add_argument("--seeds", default="1,2,3")
  parser.add_argument("--work_dir", default="runs/bench_qat")
  parser.add_argument("--max_train_examples", type=int, default=None)
  parser.add_argument("--teacher_max_train_examples", type=int, default=None)
  parser.add_argument("--teacher_model", help="an exported teacher to use instead of fine-tuning one")
  parser.add_argument("--latency_examples", type=int, default=300)
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--output", help="also write the table to this markdown file (relative to the repo root)")
  parser.add_argument("extra", nargs="*", help="further distill flags after --, e.g. -- --augmentation=")
  args = parser.parse_args(argv)
  export_dir = teacher(args)
  seeds = [int(s) for s in args.seeds.split(",")]
  rows = {key: [] for key in ("float", "int8", "ptq", "qat_float", "qat")}
  sizes, first_files = {}, {}
  for seed in seeds:
    float_report = export(distill(args, export_dir, seed, qat=False), f"float_s{seed}")
    qat_report = export(distill(args, export_dir, seed, qat=True), f"qat_s{seed}")
    keras = float_report["keras_accuracy"]
    for key, report, variant in (("float", float_report, None), ("int8", float_report, "int8"),
                                 ("ptq", float_report, "full_int8"), ("qat_float", qat_report, None),
                                 ("qat", qat_report, "full_int8")):
      accuracy = report["keras_accuracy"] if variant is None else report[variant]["accuracy"]
      rows[key].append((accuracy, 100 * (keras - accuracy)))
      file_variant = variant or "float32"
      sizes.setdefault(key, []).append(report[file_variant]["bytes"] / 2**20)
      if seed == seeds[0]:
        first_files[key] = report[file_variant]["path"]
    print(f"seed {seed}: " + ", ".join(f"{key} {values[-1][0]:.4f}" for key, values in rows.items()), flush=True)
  times = latencies({key: first_files[key] for key in ("float", "int8", "ptq", "qat")}, args)
  titles = {"float": "float32 student (Keras accuracy; size and latency of float32.tflite)",
            "int8": "dynamic-range int8 (TFLite)",
            "ptq": "post-training full int8 (TFLite)", "qat_float": "QAT student, float32 Keras",
            "qat": "QAT full int8 (TFLite)"}
  lines = [f"`python3 bench/qat.py {' '.join(argv if argv is not None else sys.argv[1:])}`", "",
           f"{args.task}, {args.student}, seeds {args.seeds}; drop: points below the float student of the same seed "
           "(negative: above it)",
           "", "| model | test accuracy | drop (points) | size (MiB) | latency 1 thread (ms) | latency 2 threads (ms) |",
           "|---|---|---|---|---|---|"]
  for key, title in titles.items():
    accuracy, drop = mean_sd([a for a, _ in rows[key]]), mean_sd([d for _, d in rows[key]])
    file_key = "float" if key == "qat_float" else key
    drop_text = "-" if key == "float" else _pm(drop, "+.2f")
    lines.append(f"| {title} | {_pm(accuracy)} | {drop_text} | {mean_sd(sizes[key])[0]:.2f} | "
                 f"{times[(file_key, 1)]:.2f} | {times[(file_key, 2)]:.2f} |")
  lines.append("")
  lines.append("Per seed (float, dynamic int8, PTQ full int8, QAT float, QAT full int8): " + "; ".join(
      f"seed {seed}: " + ", ".join(f"{rows[key][i][0]:.4f}" for key in titles) for i, seed in enumerate(seeds)))
  publish("\n".join(lines) + "\n", args.output)


def _pm(values, fmt=".4f"):
  """"mean ± sd" of (mean, sd) in `fmt`; the mean alone for one seed (sd nan)."""
  mean, sd = values
  return f"{mean:{fmt}}" + ("" if math.isnan(sd) else f" ± {sd:{fmt.lstrip('+')}}")


if __name__ == "__main__":
  main()
