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
   (`--student_init_from_layers=` as the weights come from the run), one more epoch with int8 simulated, at
   `--qat_learning_rate` if given (the BiLSTM's tables use a tenth of its preset's 1e-3: at 1e-3 the restarted
   schedule moves the trained student as far as a new epoch of training does);
3. both exported with float32, dynamic-range int8 and full_int8 (`export_student`, calibrated on 300 training
   examples, the threshold lifted so every file is kept), each file's test accuracy from the LiteRT interpreter.
A finished run or export is reused. The table gives mean ± sample sd over the seeds of the test accuracy, of its
drop from the float student in points (each seed against its own float student), and the file size; latency is
the LiteRT interpreter on single test examples at their real lengths with 1 and 2 threads, the files of the first
seed timed round-robin in one process (compare within the table: absolute times move with machine load).
"""

import argparse
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_runs import REPO, fine_tuned_teacher, is_finished, mean_sd, mean_sd_text, publish, run_logged  # noqa: E402

# The labelled data (and the extra flags' transfer set): these tables predate flags/distill.flags' augmentation.
PRESETS = {"bert2": ["--flagfile=flags/distill.flags", "--augmentation="], "bilstm": ["--flagfile=flags/bilstm.flags"]}
THRESHOLD_FREE = 100.0  # points: keep every file, the table says what it lost


def teacher(args):
  if args.teacher_model:
    return args.teacher_model
  flags = [f"--task_name={args.task}", "--num_train_epochs=1", "--seed=1"] + data_dir_flags(args)
  if args.teacher_max_train_examples:
    flags.append(f"--max_train_examples={args.teacher_max_train_examples}")
  root = os.path.join(args.work_dir, args.task)
  return fine_tuned_teacher(os.path.join(root, "teacher"), os.path.join(root, "export"), flags)


def data_dir_flags(args):
  """--data_dir for the teacher and the students of a task read from files (e.g. --task=csv)."""
  return [f"--data_dir={args.data_dir}"] if args.data_dir else []


def qat_name(args, seed):
  """The quantisation-aware run's name: its learning rate in it when not the preset's, so runs never mix."""
  return f"qat_lr{args.qat_learning_rate:g}_s{seed}" if args.qat_learning_rate else f"qat_s{seed}"


def distill(args, teacher_export, seed, qat):
  """The float student of `seed`, or (qat) its quantisation-aware continuation; returns the run dir."""
  root = os.path.join(args.work_dir, args.task, args.student)
  float_run = os.path.join(root, f"float_s{seed}")
  run_dir = os.path.join(root, qat_name(args, seed)) if qat else float_run
  if is_finished(run_dir):
    return run_dir
  flags = [*PRESETS[args.student], f"--task_name={args.task}", f"--teacher_model={teacher_export}",
           f"--seed={seed}", f"--output_dir={run_dir}"] + data_dir_flags(args) + args.extra
  if args.max_train_examples:
    flags.append(f"--max_train_examples={args.max_train_examples}")
  if qat:
    flags += [f"--student_init_run={float_run}", "--student_init_from_layers=", "--stages=qat:1"]
    if args.qat_learning_rate:
      flags.append(f"--learning_rate={args.qat_learning_rate}")
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


QAT_MARGIN = 0.5  # points: issue 31's bar, the QAT full-int8 file within this of the float student on every seed
PER_SEED = re.compile(r"seed (\d+): ([0-9.]+), ([0-9.]+), ([0-9.]+), ([0-9.]+), ([0-9.]+)")


def summarize(paths):
  """One row per table written by this script (its header line and its per-seed line): float student, post-training
  and QAT full int8 with their drops, the worst seed's QAT drop and whether it is within QAT_MARGIN points."""
  lines = ["| task, student | float32 student | post-training full int8 (drop) | QAT full int8 (drop) | "
           f"worst seed's QAT drop | QAT within {QAT_MARGIN} points on every seed |", "|---|---|---|---|---|---|"]
  for path in paths:
    with open(os.path.join(REPO, path), encoding="utf-8") as f:
      text = f.read()
    title = text.splitlines()[2].split(";")[0]  # "task, student, seeds 1,2,3"
    seeds = [tuple(float(v) for v in match[1:]) for match in PER_SEED.findall(text)]
    if not seeds:
      raise SystemExit(f"error: {path} has no per-seed line; write it with bench/qat.py --output={path}")
    floats, ptq, qat = ([s[i] for s in seeds] for i in (0, 2, 4))  # float, int8, PTQ, QAT float, QAT
    drops = {name: [100 * (f - v) for f, v in zip(floats, values)] for name, values in (("ptq", ptq), ("qat", qat))}
    worst = max(drops["qat"])
    lines.append(f"| {title} ({path}) | {mean_sd_text(floats)} | {mean_sd_text(ptq)} "
                 f"({mean_sd_text(drops['ptq'], '+.2f')}) | {mean_sd_text(qat)} ({mean_sd_text(drops['qat'], '+.2f')}) "
                 f"| {worst:+.2f} | "
                 f"{'yes' if worst <= QAT_MARGIN else 'no'} |")
  return "\n".join(lines) + "\n"


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--task", default="rotten_tomatoes", help="task_name of the runs")
  parser.add_argument("--data_dir", help="the task's files, for --task=csv (or conll, squad)")
  parser.add_argument("--student", default="bert2", choices=sorted(PRESETS))
  parser.add_argument("--seeds", default="1,2,3")
  parser.add_argument("--work_dir", default="runs/bench_qat")
  parser.add_argument("--max_train_examples", type=int, default=None)
  parser.add_argument("--teacher_max_train_examples", type=int, default=None)
  parser.add_argument("--teacher_model", help="an exported teacher to use instead of fine-tuning one")
  parser.add_argument("--qat_learning_rate", type=float, default=None,
                      help="learning rate of the quantisation-aware epoch (default: the preset's, as the float run)")
  parser.add_argument("--latency_examples", type=int, default=300)
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--output", help="also write the table to this markdown file (relative to the repo root)")
  parser.add_argument("extra", nargs="*", help="further distill flags after --, e.g. -- --augmentation=")
  parser.add_argument("--summarize", help="comma-separated tables written by this script: print (and --output) one "
                                          "summary row each instead of running anything")
  args = parser.parse_args(argv)
  if args.summarize:
    ignored = [name for name, value in vars(args).items()
               if name not in ("summarize", "output", "extra") and value != parser.get_default(name)]
    if ignored or args.extra:
      parser.error(f"--summarize runs nothing, so {', '.join('--' + n for n in ignored) or 'distill flags'} would be "
                   "ignored; pass only --summarize and --output")
    publish(summarize(args.summarize.split(",")), args.output)
    return
  export_dir = teacher(args)
  seeds = [int(s) for s in args.seeds.split(",")]
  rows = {key: [] for key in ("float", "int8", "ptq", "qat_float", "qat")}
  sizes, first_files = {}, {}
  for seed in seeds:
    float_report = export(distill(args, export_dir, seed, qat=False), f"float_s{seed}")
    qat_report = export(distill(args, export_dir, seed, qat=True), qat_name(args, seed))
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
    accuracies, drops = [a for a, _ in rows[key]], [d for _, d in rows[key]]
    file_key = "float" if key == "qat_float" else key
    drop_text = "-" if key == "float" else mean_sd_text(drops, "+.2f")
    lines.append(f"| {title} | {mean_sd_text(accuracies)} | {drop_text} | {mean_sd(sizes[key])[0]:.2f} | "
                 f"{times[(file_key, 1)]:.2f} | {times[(file_key, 2)]:.2f} |")
  lines.append("")
  lines.append("Per seed (float, dynamic int8, PTQ full int8, QAT float, QAT full int8): " + "; ".join(
      f"seed {seed}: " + ", ".join(f"{rows[key][i][0]:.4f}" for key in titles) for i, seed in enumerate(seeds)))
  publish("\n".join(lines) + "\n", args.output)


if __name__ == "__main__":
  main()
