"""A teacher ensemble against its best single member: three teachers fine-tuned with different seeds, their
weighted-mean ensemble (`--teacher_model=a,b,c`, tf_distill/ensemble.py), and the 2-layer students distilled from
each member and from the ensemble, over student seeds.

    python3 bench/ensemble.py --teacher_seeds=1,2,3 --seeds=1,2,3 --output=bench/ENSEMBLE.md
    # smoke run on a tiny setup (teachers already exported, no fine-tuning):
    python3 bench/ensemble.py --teachers=/tmp/t/e1/teacher,/tmp/t/e2/teacher --task_name=csv --data_dir=/tmp/t/data \\
        --max_seq_length=16 --student_init=1 --seeds=1 --epochs=1 --runs_dir=/tmp/t/runs

Each teacher is all-MiniLM-L6-v2 fine-tuned by `scripts/train_teacher.sh` (flags/teacher.flags) for
--teacher_epochs epochs with its own --seed, then exported (`scripts/export_teacher.sh`); --teachers names exports
to use instead. Teachers' and the ensemble's test accuracy come from their `serving_default` logits on the test
split (the ensemble through `EnsembleTeacher`, the combination distil uses). Every student is flags/distill.flags'
(2 layers from teacher layers --student_init, soft CE at T=2, alpha=0.5) for --epochs epochs, with the teacher's
outputs cached once per teacher (`--teacher_cache=auto`) and shared by the seeds. A run whose eval_results.json
exists is reused, so an interrupted bench continues where it stopped.
"""

import argparse
import os
import sys

from bench_runs import (REPO, fine_tuned_teacher, is_finished, mean_sd, mean_sd_text, publish, run_logged,
                        test_accuracy)

sys.path.insert(0, REPO)  # this checkout's tf_distill, for the teachers' own test accuracy


def data_flags(args):
  given = [name for name in ("data_dir", "max_seq_length") if getattr(args, name)]
  return [f"--task_name={args.task_name}"] + [f"--{name}={getattr(args, name)}" for name in given]


def fine_tuned_teachers(args):
  """Export paths of the teachers: --teachers, or one fine-tuned and exported per --teacher_seeds seed."""
  if args.teachers:
    return args.teachers.split(",")
  return [fine_tuned_teacher(os.path.join(args.runs_dir, f"teacher_s{seed}"),
                             os.path.join(args.runs_dir, f"export_s{seed}"),
                             [*data_flags(args), f"--seed={seed}", f"--num_train_epochs={args.teacher_epochs}"])
          for seed in args.teacher_seeds.split(",")]


def teacher_accuracies(args, exports):
  """Test accuracy of each member and of their ensemble, from serving_default logits."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  import tf_distill  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  from tf_distill.report import batched_logits, test_split  # pylint: disable=import-outside-toplevel
  from tf_distill.ensemble import EnsembleTeacher  # pylint: disable=import-outside-toplevel
  from tf_distill.export.serving import latest_version_dir  # pylint: disable=import-outside-toplevel
  from tf_distill.teacher import SavedModelTeacher  # pylint: disable=import-outside-toplevel
  from tf_distill.training import accuracy  # pylint: disable=import-outside-toplevel

  paths = [os.path.join(REPO, p) for p in exports]
  features = test_split(latest_version_dir(paths[0]), args.data_dir, None).features
  members = [SavedModelTeacher(p) for p in paths]
  ensemble = EnsembleTeacher(members, weights=args.teacher_weights)

  def score(teacher):
    return accuracy(batched_logits(lambda b: np.asarray(teacher(b, ["logits"])["logits"]), features),
                    features["label_ids"])

  return [score(m) for m in members], score(ensemble)


def student_accuracy(args, name, teacher_flags, seed):
  out = os.path.join(args.runs_dir, f"student_{name}_s{seed}")
  if not is_finished(out):
    run_logged(["scripts/distill.sh", *data_flags(args), *teacher_flags, f"--seed={seed}",
                f"--num_train_epochs={args.epochs}", f"--student_init_from_layers={args.student_init}", "--augmentation=",
                "--teacher_cache=auto", f"--teacher_cache_dir={os.path.join(args.runs_dir, 'cache_' + name)}",
                f"--output_dir={out}"] + ([f"--max_train_examples={args.max_train_examples}"]
                                          if args.max_train_examples else []),
               os.path.join(args.runs_dir, f"student_{name}_s{seed}.log"))
  return test_accuracy(out)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--teacher_seeds", default="1,2,3", help="One teacher fine-tuned per seed.")
  parser.add_argument("--teachers", help="Comma-separated teacher exports to use instead of fine-tuning.")
  parser.add_argument("--teacher_epochs", type=int, default=1, help="Fine-tuning epochs of each teacher.")
  parser.add_argument("--teacher_weights", type=lambda s: [float(w) for w in s.split(",")], default=None,
                      help="The ensemble's --teacher_weights (default equal).")
  parser.add_argument("--seeds", default="1,2,3", help="Student seeds.")
  parser.add_argument("--runs_dir", default="runs/bench_ensemble")
  parser.add_argument("--task_name", default="rotten_tomatoes")
  parser.add_argument("--data_dir", default=None, help="For --task_name=csv.")
  parser.add_argument("--max_seq_length", type=int, default=None, help="Default: flags/common.flags' 64.")
  parser.add_argument("--max_train_examples", type=int, default=None, help="Students only. Default: all.")
  parser.add_argument("--epochs", type=int, default=3, help="Student epochs.")
  parser.add_argument("--student_init", default="2,5", help="Teacher layers initialising the student.")
  parser.add_argument("--output", help="Markdown file to write the table and the command to.")
  args = parser.parse_args()
  exports = fine_tuned_teachers(args)
  seeds = [int(s) for s in args.seeds.split(",")]
  member_teacher, ensemble_teacher = teacher_accuracies(args, exports)
  member_students = [[student_accuracy(args, f"t{i + 1}", [f"--teacher_model={path}"], seed) for seed in seeds]
                     for i, path in enumerate(exports)]
  weights = [f"--teacher_weights={','.join(map(str, args.teacher_weights))}"] if args.teacher_weights else []
  ensemble_students = [student_accuracy(args, "ensemble", [f"--teacher_model={','.join(exports)}", *weights], seed)
                       for seed in seeds]
  best = max(range(len(exports)), key=lambda i: member_teacher[i])
  best_student = mean_sd(member_students[best])[0]
  rows = [f"| teacher {i + 1}{' (best)' if i == best else ''} | {member_teacher[i]:.4f} | "
          f"{mean_sd_text(member_students[i])} | {100 * (mean_sd(member_students[i])[0] - best_student):+.2f} points |"
          for i in range(len(exports))]
  gain = 100 * (mean_sd(ensemble_students)[0] - best_student)
  rows.append(f"| ensemble of {len(exports)} | {ensemble_teacher:.4f} | {mean_sd_text(ensemble_students)} | "
              f"{gain:+.2f} points |")
  text = "\n".join([
      f"Command: `python3 bench/ensemble.py {' '.join(sys.argv[1:])}`", "",
      f"{args.task_name} test accuracy. Teachers: {', '.join(exports)}; ensemble weights "
      f"{args.teacher_weights or 'equal'}. Students: 2 layers from teacher layers {args.student_init}, {args.epochs} "
      f"epochs on {args.max_train_examples or 'all'} training examples, seeds {args.seeds}, mean ± sample sd.", "",
      "| teacher | teacher test accuracy | student test accuracy | student vs best member's |", "|---|---|---|---|",
      *rows, ""])
  publish(text, args.output)


if __name__ == "__main__":
  main()
