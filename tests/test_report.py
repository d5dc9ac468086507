"""Tests for tf_distill/report.py and its CLI: the round-robin latency timer, the table and the PNG.

The whole program runs end to end in test_cli.py (CliPipelineTest.test_report)."""

import functools
import json
import os
from unittest import mock

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from absl import flags
import numpy as np
import tensorflow as tf

from tf_distill import report, tasks
from tf_distill.cli import report as report_cli

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class FakeMachine:
  """A clock that advances only inside fake predict calls, by `duration(model, call_number)` seconds, and a record
  of which model was called in what order."""

  def __init__(self, duration):
    self.now = 0.0
    self.calls = []  # (model name, example)
    self.timings = {}  # model name -> seconds of each timed call, in order
    self._duration = duration

  def clock(self):
    return self.now

  def model(self, name, num_examples):
    def predict(example):
      self.now += self._duration(name, len(self.calls))
      self.calls.append((name, example["index"]))
    return report.Timed(predict, [{"index": i} for i in range(num_examples)])


def rows():
  return [report.Row("teacher", 0.80, 4_400_000, 16.8, 9.0, 8.5, 9.6),
          report.Row("student", 0.77, 1_200_000, 4.6, 2.5, 2.4, 2.7),
          report.Row("student_int8", 0.76, 1_200_000, 1.3, 0.9, 0.85, 1.0)]


class RoundRobinTest(tf.test.TestCase):

  def test_rounds_interleave_models_and_rotate_the_first(self):
    machine = FakeMachine(lambda name, call: 0.001)
    models = [machine.model(name, 6) for name in "abc"]
    report.round_robin_latencies(models, rounds=3, clock=machine.clock, warmup_calls=1)
    self.assertEqual(machine.calls[:3], [("a", 0), ("b", 0), ("c", 0)])  # warm-up
    self.assertEqual(machine.calls[3:], [
        ("a", 0), ("a", 1), ("b", 0), ("b", 1), ("c", 0), ("c", 1),
        ("b", 2), ("b", 3), ("c", 2), ("c", 3), ("a", 2), ("a", 3),
        ("c", 4), ("c", 5), ("a", 4), ("a", 5), ("b", 4), ("b", 5)])

  def test_fewer_examples_than_rounds(self):
    machine = FakeMachine(lambda name, call: 0.001)
    latencies = report.round_robin_latencies([machine.model("a", 3), machine.model("b", 3)], rounds=5,
                                             clock=machine.clock, warmup_calls=0)
    self.assertLen(machine.calls, 6)
    self.assertEqual([len(latency.round_medians_ms) for latency in latencies], [3, 3])

  def test_median_and_round_medians_match_numpy(self):
    durations = np.random.default_rng(0).uniform(0.001, 0.010, size=200)
    machine = FakeMachine(lambda name, call: durations[call] * (2.0 if name == "slow" else 1.0))
    models = [machine.model("fast", 9), machine.model("slow", 9)]
    latencies = report.round_robin_latencies(models, rounds=3, clock=machine.clock, warmup_calls=2)
    timed = machine.calls[4:]  # after 2 warm-up calls per model
    for latency, name in zip(latencies, ("fast", "slow")):
      seconds = [durations[4 + k] * (2.0 if name == "slow" else 1.0)
                 for k, (called, _) in enumerate(timed) if called == name]
      self.assertLen(seconds, 9)
      self.assertAllClose(latency.median_ms, 1000 * np.median(seconds))
      self.assertAllClose(latency.round_medians_ms, [1000 * np.median(seconds[i:i + 3]) for i in (0, 3, 6)])

  def test_identical_models_measure_equal_within_the_spread_while_the_machine_drifts(self):
    machine = FakeMachine(lambda name, call: 0.005 * (1 + call / 100))  # the machine slows down as it goes
    first, second = report.round_robin_latencies([machine.model("a", 100), machine.model("b", 100)], rounds=5,
                                                 clock=machine.clock)
    # Timed one after the other, a's median would be 7.5 ms and b's 12.5 ms, outside each other's spread.
    for this, other in ((first, second), (second, first)):
      self.assertBetween(this.median_ms, min(other.round_medians_ms), max(other.round_medians_ms))


class OutputsTest(tf.test.TestCase):

  def test_table_shows_the_spread(self):
    table = report.format_table(rows())
    self.assertIn("| round medians (ms) |", table.splitlines()[0])
    self.assertIn("| student | 0.7700 | 96.2% | 1.20M | 4.6 | 2.50 | 2.40–2.70 | 3.60x |", table)
    self.assertEqual(len({line.count("|") for line in table.splitlines()}), 1)

  def test_extra_scores_are_columns_after_the_metric(self):
    measured = rows()
    measured[0].extra, measured[1].extra = {"exact match": 0.7}, {"exact match": 0.65}
    measured[2].not_shipped = "+3.00 points vs the Keras student, threshold 1"
    table = report.format_table(measured, "SQuAD F1")
    self.assertTrue(table.startswith("| model | test SQuAD F1 | test exact match | % of teacher |"))
    self.assertIn("| student | 0.7700 | 0.6500 | 96.2% | 1.20M |", table)
    self.assertIn("| student_int8 | 0.7600 (not shipped: +3.00 points vs the Keras student, threshold 1) | - | 95.0% |",
                  table)
    self.assertEqual(len({line.count("|") for line in table.splitlines()}), 1)

  def test_png(self):
    path = os.path.join(self.get_temp_dir(), "report.png")
    report.plot_rows(rows(), path)
    with open(path, "rb") as f:
      self.assertEqual(f.read(8), PNG_SIGNATURE)
    self.assertGreater(os.path.getsize(path), 10_000)
    import matplotlib.image  # pylint: disable=import-outside-toplevel
    pixels = matplotlib.image.imread(path)
    self.assertEqual(pixels.shape[:2], (450, 700))
    self.assertGreater(len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)), 50)  # not a blank canvas

  def test_main_writes_report_files_with_round_robin_latencies(self):
    """main() with the model loading faked: a teacher and two identical students on a drifting fake machine."""
    fresh = flags.FlagValues()  # the programs' flags are process-global; report's own, unparsed elsewhere
    report_cli.define_flags(fresh)
    machine = FakeMachine(lambda name, call: 0.001 * (1 + call / 50))
    features = {"label_ids": np.zeros(40, np.int32), "input_ids": np.zeros((40, 8), np.int32)}
    split = report.TestSplit(features, tasks.task_type_of("csv"), ["neg", "pos"])

    def saved_model_row(name, path, split, latency_examples):
      del path, split
      return report.Row(name, 0.8, 1000, 1.0), machine.model(name, latency_examples)

    report_dir = os.path.join(self.get_temp_dir(), "report")
    fresh(["report", "--teacher_model=t", "--models=a:a,b:b", "--tflite=", "--latency_examples=40",
           "--latency_rounds=4", f"--report_dir={report_dir}"])
    timer = functools.partial(report.round_robin_latencies, clock=machine.clock)  # fake time only, whatever the load
    with mock.patch.object(report_cli, "FLAGS", fresh), \
        mock.patch.object(report, "round_robin_latencies", timer), \
        mock.patch.object(report_cli, "latest_version_dir", lambda path: path), \
        mock.patch.object(report, "test_split", lambda *args: split), \
        mock.patch.object(report, "set_up_warnings", lambda *args: []), \
        mock.patch.object(report, "saved_model_row", saved_model_row):
      report_cli.main([])
    self.assertCountEqual(os.listdir(report_dir), ["report.md", "report.json", "report.png"])
    with open(os.path.join(report_dir, "report.json"), encoding="utf-8") as f:
      written = json.load(f)
    self.assertEqual(written["metric"], "accuracy")
    rows_by_name = {row["name"]: row for row in written["rows"]}
    self.assertEqual(list(rows_by_name), ["teacher", "a", "b"])
    self.assertLen(machine.calls, 3 * (report.WARMUP_CALLS + 40))
    for this, other in (("a", "b"), ("b", "a")):
      self.assertBetween(rows_by_name[this]["latency_ms"], rows_by_name[other]["latency_low_ms"],
                         rows_by_name[other]["latency_high_ms"])


if __name__ == "__main__":
  tf.test.main()
