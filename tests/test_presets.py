"""The recipe presets in flags/ parse with the real distill flags into valid configs and layer matches for the
embedded teacher's shape (6 layers, 384 wide, 12 heads); the stage and value schedules follow their formulas."""

import json
import subprocess

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from tf_distill.layer_map import Match
from tf_distill.schedules import (LinearSchedule, StageSchedule, cwsm_temperature, flsw_temperature, parse_stages,
                                  parse_value_schedule)

import tiny

EXPECTED = {
    "distilbert6": ("s3:t6:cosine:1.0", (1, 3, 5), "bert"),
    "pkd_skip": ("s1:t2:pkd_cls:10.0;s2:t4:pkd_cls:10.0", (1, 3, 5), "bert"),
    "tinybert4": ("s0:t0:hidden_mse:1.0;s1:t2:hidden_mse:1.0;s2:t3:hidden_mse:1.0;s3:t5:hidden_mse:1.0;"
                  "s4:t6:hidden_mse:1.0;s1:t2:attention_mse_scores:1.0;s2:t3:attention_mse_scores:1.0;"
                  "s3:t5:attention_mse_scores:1.0;s4:t6:attention_mse_scores:1.0", None, "bert"),
    "minilm": ("s3:t6:attention_kl:1.0;s3:t6:value_relation:1.0", (2, 4, 6), "bert"),
    "bilstm": ("", None, "bilstm"),
    "ner": ("", (2, 5), "bert"),
}


_PARSE_PRESETS = """
import dataclasses, json, sys
from absl import flags
from tf_distill.cli import common, distill
from tf_distill.layer_map import format_matches, parse_matches
from tf_distill.schedules import parse_stages
sys.path.insert(0, "bench")
from bench_runs import twin_flags
distill.define_flags()
out = {}
def parse(*argv):
  for name in flags.FLAGS:
    flags.FLAGS[name].unparse()
  flags.FLAGS(["distill", "--flagfile=flags/distill.flags", *argv])
  common.train_config_from_flags(flags.FLAGS)
  return common.distill_config_from_flags(flags.FLAGS), common.student_config_from_flags(flags.FLAGS)
for preset in sys.argv[1:]:
  twin, _ = parse(f"--flagfile=flags/{preset}.flags", *twin_flags(f"flags/{preset}.flags"))  # the benches' twin
  twin_epochs = flags.FLAGS.num_train_epochs
  d, s = parse(f"--flagfile=flags/{preset}.flags")
  matches = parse_matches(d.intermediate_matches, s.bert.num_hidden_layers, 6, d.layer_map) if d.intermediate_matches else ()
  out[preset] = {"matches": format_matches(matches), "student": dataclasses.asdict(s),
                 "stages": parse_stages(d.stages), "output_dir": flags.FLAGS.output_dir,
                 "task_name": flags.FLAGS.task_name, "epochs": flags.FLAGS.num_train_epochs,
                 "augmentation": [d.augmentation, d.augmentation_mode, d.teacher_cache],
                 "twin": [twin.alpha, twin.augmentation, twin.intermediate_matches, twin.stages, twin.teacher_cache,
                          twin_epochs]}
print(json.dumps(out))
"""


class PresetTest(tf.test.TestCase, parameterized.TestCase):
  """Each preset parsed as scripts/distill.sh does (cwd = repository root, flags/distill.flags then the preset)."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    result = subprocess.run([tiny.PYTHON, "-c", _PARSE_PRESETS, *EXPECTED], cwd=tiny.REPO_ROOT,
                            env=tiny.subprocess_env(), capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
      raise AssertionError(result.stderr[-3000:])
    cls.parsed = json.loads(result.stdout.strip().splitlines()[-1])

  @parameterized.named_parameters(*[(name, name) for name in EXPECTED])
  def test_preset_parses_to_valid_configs(self, preset):
    parsed = self.parsed[preset]
    expected_matches, init_layers, student_type = EXPECTED[preset]
    self.assertEqual(parsed["student"]["type"], student_type)
    init = parsed["student"]["bert"]["init_from_layers"]
    self.assertEqual(tuple(init) if init else None, init_layers)
    self.assertEqual(parsed["matches"], expected_matches)
    self.assertEqual(parsed["output_dir"], f"runs/{preset}")

  @parameterized.named_parameters(*[(name, name) for name in EXPECTED])
  def test_twin_without_distillation_parses(self, preset):
    # tinybert4's stages intermediate:2,prediction:2; ner's 8 epochs; flags/distill.flags' 3
    epochs = {"tinybert4": 4, "ner": 8}.get(preset, 3)
    self.assertEqual(self.parsed[preset]["twin"], [0.0, "", "", "", "off", epochs])

  def test_ner_preset_distils_the_wnut17_tagger(self):
    parsed = self.parsed["ner"]
    self.assertEqual((parsed["task_name"], parsed["epochs"]), ("wnut17", 8))
    self.assertEqual(parsed["augmentation"][0], "")

  def test_bilstm_is_tangs_recipe_with_augmentation(self):
    self.assertEqual(self.parsed["bilstm"]["augmentation"], ["tang:n=10", "fixed", "auto"])

  def test_tinybert_stages(self):
    self.assertEqual(self.parsed["tinybert4"]["stages"], [["intermediate", 2], ["prediction", 2]])

  def test_tinybert_augments_both_stages_online(self):
    self.assertEqual(self.parsed["tinybert4"]["augmentation"], ["tinybert:n=10", "fixed", "off"])


class ScheduleTest(tf.test.TestCase):

  def test_stage_weights(self):
    matches = [Match(1, 2, "hidden_mse", 2.0), Match(2, 4, "hidden_mse", 3.0), Match(3, 6, "hidden_mse", 1.0)]
    schedule = StageSchedule(parse_stages("intermediate:1,prediction:1,joint:1"))
    self.assertEqual(schedule.weights_at(0, matches), (0.0, 1.0, (2.0, 3.0, 1.0)))
    self.assertEqual(schedule.weights_at(1, matches), (1.0, 0.0, (2.0, 3.0, 1.0)))
    self.assertEqual(schedule.weights_at(2, matches), (1.0, 1.0, (2.0, 3.0, 1.0)))
    progressive = StageSchedule(parse_stages("progressive:3,prediction:1"))
    self.assertEqual(progressive.weights_at(0, matches), (0.0, 1.0, (2.0, 0.0, 0.0)))
    self.assertEqual(progressive.weights_at(1, matches), (0.0, 1.0, (2.0, 3.0, 0.0)))
    self.assertEqual(progressive.weights_at(2, matches), (0.0, 1.0, (2.0, 3.0, 1.0)))
    self.assertEqual(progressive.weights_at(3, matches), (1.0, 0.0, (2.0, 3.0, 1.0)))

  def test_bad_stages(self):
    with self.assertRaisesRegex(ValueError, r"unknown stage 'warmup' in --stages='warmup:1'"):
      parse_stages("warmup:1")
    with self.assertRaisesRegex(ValueError, r"stage 'prediction' .* needs a number of epochs >= 1"):
      parse_stages("prediction")

  def test_linear_schedule(self):
    schedule = LinearSchedule("temperature", 4.0, 1.0, total_steps=10)
    self.assertAllClose([schedule.value_at(s) for s in (0, 5, 10, 20)], [4.0, 2.5, 1.0, 1.0])
    self.assertIsNone(parse_value_schedule("constant", "alpha_schedule"))
    self.assertEqual(parse_value_schedule("linear:0.9", "alpha_schedule"), 0.9)
    with self.assertRaisesRegex(ValueError, r"--alpha_schedule='cosine': use constant or linear:END"):
      parse_value_schedule("cosine", "alpha_schedule")

  def test_textbrewer_temperatures_by_hand(self):
    zs = np.array([[2.0, 0.0], [0.5, 0.4], [-1.0, 3.0]])
    zt = np.array([[1.0, 0.0], [0.0, 2.0], [-1.0, 2.0]])
    cos = (zs * zt).sum(-1) / np.linalg.norm(zs, axis=-1) / np.linalg.norm(zt, axis=-1)
    w = (1 - cos) ** 2.0
    self.assertAllClose(flsw_temperature(0.5, 2.0)(zs, zt, 3.0), 3.0 + (w.mean() - w) * 0.5, atol=1e-6)
    p = np.exp(zs) / np.exp(zs).sum(-1, keepdims=True)
    w = 1 / (p.max(-1) + 1e-3)
    self.assertAllClose(cwsm_temperature(0.5)(zs, zt, 3.0), 3.0 + (w.mean() - w) * 0.5, atol=1e-5)


if __name__ == "__main__":
  tf.test.main()
