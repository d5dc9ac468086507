"""Tests for tf_distill.distiller, callbacks, optimization and students.bert, with a tiny exported teacher."""

import os
import tempfile

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from absl.testing import parameterized
import numpy as np
import tensorflow as tf
import tf_keras as keras

from tf_distill.callbacks import KeepBestStudent, NonFiniteLossError, StopOnNonFiniteLoss
from tf_distill.configs import BertStudentConfig
from tf_distill.data.pipeline import make_dataset
from tf_distill.distiller import Distiller, trim_padding
from tf_distill.layer_map import parse_matches
from tf_distill.optimization import WarmupLinearDecay, create_optimizer
from tf_distill.students.bert import build_bert_student, student_bert_config
from tf_distill import teacher_cache
from tf_distill.teacher import SavedModelTeacher

import tiny


def _features_and_labels(seed=21):
  features = tiny.random_features(6, 16, lengths=[10, 4, 7, 3, 9, 5], seed=seed, segment_b=True)
  labels = np.array([0, 1, 1, 0, 1, 0], np.int32)
  return features, labels


def _values(variables):
  return [v.numpy().copy() for v in variables]


class _FailingTeacher:
  """Stands in for a teacher that must not be queried."""

  needs_example_index = False

  def __call__(self, features, outputs=None):
    raise AssertionError("the teacher was queried")

  def check_outputs(self, outputs):
    del outputs


class _TinyTeacherTestCase(tf.test.TestCase, parameterized.TestCase):
  """Shares the exported tiny teacher (logits only) across a class's tests."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.shared = tiny.shared_teacher()
    cls.teacher = SavedModelTeacher(cls.shared.path)


class DistillerTest(_TinyTeacherTestCase):

  def _student(self, seed=3, layers=1):
    return tiny.tiny_classifier(seed=seed, classifier_stddev=0.5, num_hidden_layers=layers)

  @parameterized.named_parameters(
      ("alpha_0", 0.0, "ce", 2.0),
      ("alpha_half_ce", 0.5, "ce", 2.0),
      ("alpha_1_kl", 1.0, "kl", 4.0),
      ("alpha_half_mse", 0.5, "mse", 1.0),
      ("alpha_half_ce_unlabeled", 0.5, "ce", 2.0, (1, 2, 4)),
      ("alpha_1_kl_unlabeled", 1.0, "kl", 4.0, (0, 5)),
  )
  def test_train_step_loss_and_update_match_numpy(self, alpha, kd_loss, t, unlabeled=()):
    """`unlabeled`: rows given label -1 (transfer-set text): no hard-label loss, still the distillation term."""
    features, labels = _features_and_labels()
    labels[list(unlabeled)] = -1
    has_label = labels >= 0
    student = self._student()
    zs = student(features, training=False)["logits"].numpy().astype(np.float64)
    zt = self.shared.model(features, training=False)["logits"].numpy().astype(np.float64)
    bias_before = student.classifier.bias.numpy().astype(np.float64)
    distiller = Distiller(student, self.teacher if alpha > 0 else None, alpha=alpha, temperature=t, kd_loss=kd_loss)
    lr = 0.5
    distiller.compile(optimizer=keras.optimizers.SGD(learning_rate=lr))
    logs = distiller.train_on_batch(features, labels, return_dict=True)

    batch, num_labels = zs.shape
    onehot = np.eye(num_labels)[labels] * has_label[:, None]  # an all-zero row for an unlabeled example
    hard = np.sum(-np.sum(onehot * tiny.log_softmax(zs), axis=-1)) / batch  # mean over all rows, labelled or not
    grad_hard = (tiny.softmax(zs) - onehot) * has_label[:, None] / batch  # d hard / d z_s
    if alpha == 0:
      kd, grad_kd = 0.0, np.zeros_like(zs)
    elif kd_loss == "ce":
      kd = t * t * np.mean(-np.sum(tiny.softmax(zt / t) * tiny.log_softmax(zs / t), axis=-1))
      grad_kd = t * (tiny.softmax(zs / t) - tiny.softmax(zt / t)) / batch
    elif kd_loss == "kl":
      p = tiny.softmax(zt / t)
      kd = t * t * np.mean(np.sum(p * (tiny.log_softmax(zt / t) - tiny.log_softmax(zs / t)), axis=-1))
      grad_kd = t * (tiny.softmax(zs / t) - p) / batch
    else:
      kd = np.mean((zt - zs) ** 2)
      grad_kd = -2.0 * (zt - zs) / (batch * num_labels)
    if alpha == 0:  # hard labels only: the loss is the hard term, and no distillation term is shown
      self.assertEqual(sorted(logs), ["accuracy", "loss"])
    else:
      # Shown over the labelled rows only (the loss weights each row 1 / batch).
      self.assertAllClose(logs["hard_loss"], hard * batch / has_label.sum(), rtol=1e-5)
      self.assertAllClose(logs["kd_loss"], kd, rtol=1e-5, atol=1e-7)
    self.assertAllClose(logs["loss"], (1 - alpha) * hard + alpha * kd, rtol=1e-5)
    self.assertAllClose(logs["accuracy"], np.mean((zs.argmax(-1) == labels)[has_label]))
    # The logits are classifier(pooled) + bias, so d loss / d bias is the column sum of d loss / d z_s.
    expected_bias = bias_before - lr * ((1 - alpha) * grad_hard + alpha * grad_kd).sum(axis=0)
    self.assertAllClose(student.classifier.bias, expected_bias, rtol=1e-4, atol=1e-6)

  def test_probability_shift_feeds_the_shifted_teacher_to_kd(self):
    features, labels = _features_and_labels()
    student = self._student()
    zs = student(features, training=False)["logits"].numpy().astype(np.float64)
    zt = self.shared.model(features, training=False)["logits"].numpy().astype(np.float64)
    labels = np.argmin(zt, axis=-1).astype(np.int32)  # the teacher is wrong on every example
    shifted = zt.copy()
    for i, (top, label) in enumerate(zip(np.argmax(zt, -1), labels)):
      shifted[i, top], shifted[i, label] = zt[i, label], zt[i, top]
    distiller = Distiller(student, self.teacher, alpha=1.0, temperature=2.0, shift_probabilities=True)
    distiller.compile(optimizer=keras.optimizers.SGD(0.0))
    logs = distiller.train_on_batch(features, labels, return_dict=True)
    kd = 4.0 * np.mean(-np.sum(tiny.softmax(shifted / 2.0) * tiny.log_softmax(zs / 2.0), axis=-1))
    self.assertAllClose(logs["kd_loss"], kd, rtol=1e-5)

  def test_teacher_unchanged_while_student_trains(self):
    features, labels = _features_and_labels()
    student = self._student(layers=2)
    teacher_before = _values(self.teacher.variables)
    student_before = _values(student.trainable_variables)
    self.assertTrue(all(v.trainable for v in self.teacher.variables if not v.name.endswith("calls:0")))  # restored
    # as trainable (all but the dropout call counters): only isolation keeps the teacher fixed
    distiller = Distiller(student, self.teacher, alpha=0.5, temperature=2.0)
    distiller.compile(optimizer=create_optimizer(1e-2, total_steps=3, warmup_proportion=0.0, weight_decay=0.01))
    dataset = make_dataset({**features, "label_ids": labels}, batch_size=2, training=True)
    history = distiller.fit(dataset, epochs=1, verbose=0)
    self.assertEqual(int(distiller.optimizer.iterations), 3)
    self.assertTrue(all(np.isfinite(history.history["loss"])))
    for before, variable in zip(teacher_before, self.teacher.variables):
      self.assertAllEqual(variable, before, msg=variable.name)
    changed = [not np.array_equal(b, v.numpy()) for b, v in zip(student_before, student.trainable_variables)]
    self.assertTrue(all(changed), [v.name for c, v in zip(changed, student.trainable_variables) if not c])

  def test_teacher_is_neither_trained_nor_saved(self):
    student = self._student()
    distiller = Distiller(student, self.teacher, alpha=0.5)
    teacher_ids = {id(v) for v in self.teacher.variables}
    self.assertEqual([id(v) for v in distiller.trainable_variables], [id(v) for v in student.trainable_variables])
    self.assertFalse(teacher_ids & {id(v) for v in distiller.variables})
    with_teacher = os.path.join(self.get_temp_dir(), "with_teacher", "ckpt")
    distiller.save_weights(with_teacher)
    # A distiller of the same student shape without a teacher saves exactly the same set of variables.
    baseline = Distiller(self._student(), None, alpha=0.0)
    without_teacher = os.path.join(self.get_temp_dir(), "without_teacher", "ckpt")
    baseline.save_weights(without_teacher)
    keys = dict(tf.train.list_variables(with_teacher))
    self.assertEqual(keys, dict(tf.train.list_variables(without_teacher)))
    student_keys = [k for k in keys if k.startswith("student/") and k.endswith("VARIABLE_VALUE")]
    self.assertLen(student_keys, len(student.weights))
    self.assertFalse([k for k in keys if "teacher" in k])

  def test_trim_padding(self):
    features = tiny.random_features(3, 12, lengths=[5, 3, 2], seed=5)
    trimmed = trim_padding(features)
    for key, value in features.items():
      self.assertAllEqual(trimmed[key], value[:, :5])
    empty = {k: np.zeros([2, 6], np.int32) for k in features}
    self.assertEqual(trim_padding(empty)["input_ids"].shape, (2, 1))

  def test_predict_and_evaluate_score_the_student_alone(self):
    features, labels = _features_and_labels()
    student = self._student()
    distiller = Distiller(student, _FailingTeacher(), alpha=0.5)
    distiller.compile(optimizer=keras.optimizers.SGD(0.1))
    dataset = make_dataset({**features, "label_ids": labels}, batch_size=6, training=False)
    zs = student(features, training=False)["logits"].numpy()
    self.assertAllClose(distiller.predict(dataset, verbose=0), zs, atol=1e-5)
    logs = distiller.evaluate(dataset, verbose=0, return_dict=True)
    hard = np.mean(-tiny.log_softmax(zs)[np.arange(6), labels])
    self.assertAllClose(logs["loss"], hard, rtol=1e-5)
    self.assertAllClose(logs["accuracy"], np.mean(zs.argmax(-1) == labels))
    self.assertEqual(sorted(logs), ["accuracy", "loss"])  # no kd_loss of 0: only what evaluation computes

  @parameterized.named_parameters(
      ("alpha_above_1", dict(alpha=1.5), ValueError, r"alpha must be in \[0, 1\], got 1.5"),
      ("alpha_negative", dict(alpha=-0.1), ValueError, r"alpha must be in \[0, 1\], got -0.1"),
      ("temperature_0", dict(temperature=0.0), ValueError, r"temperature must be > 0, got 0.0"),
      ("no_teacher", dict(alpha=0.3, teacher=None), ValueError, r"alpha=0.3 needs a teacher"),
      ("unknown_loss", dict(kd_loss="cosine"), LookupError, r"unknown kd loss 'cosine'; known: \['ce', 'kl', 'mse'\]"),
  )
  def test_constructor_errors(self, kwargs, error, message):
    kwargs = {"teacher": _FailingTeacher(), **kwargs}
    with self.assertRaisesRegex(error, message):
      Distiller(self._student(), **kwargs)

  def test_get_config(self):
    distiller = Distiller(self._student(), _FailingTeacher(), alpha=0.25, temperature=3.0, kd_loss="kl")
    self.assertEqual(distiller.get_config(), {"alpha": 0.25, "temperature": 3.0, "kd_loss": "kl", "matches": "",
                                                "shift_probabilities": False, "labelled": True})


class IntermediateDistillationTest(tf.test.TestCase):
  """Intermediate matches through the train step: a 16-wide student against the 32-wide tiny teacher."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.shared = tiny.shared_teacher()
    cls.teacher = SavedModelTeacher(cls.shared.path, required_outputs=("logits", "hidden_states"))

  def test_feature_losses_match_numpy_and_projections_train(self):
    features, labels = _features_and_labels()
    student = tiny.tiny_classifier(seed=4, classifier_stddev=0.5, num_hidden_layers=1, hidden_size=16,
                                   intermediate_size=32)
    matches = parse_matches("hidden_mse:2.0,attention_mse_scores:0.5", 1, 2, "0:0,uniform")
    self.assertEqual([str(m) for m in matches], ["s0:t0:hidden_mse:2.0", "s1:t2:hidden_mse:2.0",
                                                 "s1:t2:attention_mse_scores:0.5"])
    distiller = Distiller(student, self.teacher, alpha=0.0, matches=matches)
    # alpha = 0: the logits are not read, only what the matches compare.
    self.assertEqual(distiller.teacher_outputs, ("attention_scores", "embeddings", "hidden_states"))
    projections = {name: [v.numpy() for v in layer.weights] for name, layer in distiller.projections.items()}
    self.assertEqual(sorted(projections), ["match_0", "match_1"])  # the attention loss needs none
    # Expected losses, by hand, from the models' outputs before the step (the tiny configs have no dropout).
    length = int(features["input_mask"].sum(1).max())
    trimmed = {k: v[:, :length] for k, v in features.items()}
    mask = trimmed["input_mask"].astype(np.float64)
    t = self.shared.model(trimmed, training=False)
    s = student(trimmed, training=False)

    def hidden_mse(teacher, student_states, weights):
      projected = student_states.numpy() @ weights[0] + weights[1]
      per_token = ((teacher.numpy() - projected) ** 2).mean(-1)
      return (per_token * mask).sum() / mask.sum()

    pair = mask[:, None, :, None] * mask[:, None, None, :]
    scores = ((t["attention_scores"][1].numpy() - s["attention_scores"][0].numpy()) ** 2 * pair).sum()
    scores /= pair.sum() * 4  # heads x real (query, key) pairs
    expected = (2.0 * hidden_mse(t["embeddings"], s["embeddings"], projections["match_0"])
                + 2.0 * hidden_mse(t["hidden_states"][1], s["hidden_states"][0], projections["match_1"])
                + 0.5 * scores)
    onehot = np.eye(2)[labels]
    hard = np.mean(-np.sum(onehot * tiny.log_softmax(s["logits"].numpy()), axis=-1))
    distiller.compile(optimizer=keras.optimizers.SGD(0.1))
    logs = distiller.train_on_batch(features, labels, return_dict=True)
    self.assertAllClose(logs["feature_loss"], expected, rtol=1e-4)
    self.assertAllClose(logs["loss"], hard + expected, rtol=1e-4)
    # Projections are trained with the student, but are not part of it (so never exported).
    for name, layer in distiller.projections.items():
      self.assertNotAllClose(layer.weights[0], projections[name][0])
    student_names = {v.name for v in student.weights}
    self.assertFalse(any("projection" in name for name in student_names))
    self.assertLen(distiller.trainable_variables, len(student.trainable_variables) + 4)

  def test_cached_intermediates_give_the_online_step(self):
    features, labels = _features_and_labels()
    matches = parse_matches("hidden_mse:2.0,attention_mse_scores:0.5", 1, 2, "0:0,uniform")
    outputs = ("logits", "attention_scores", "embeddings", "hidden_states")
    key = teacher_cache.cache_key(self.shared.path, self.shared.vocab_file, 16,
                                  teacher_cache.features_fingerprint(features))
    cache_dir = os.path.join(self.get_temp_dir(), "cache")
    # Only teacher layer 2 (index 1) is stored: the matches read no other layer.
    teacher_cache.build_cache(SavedModelTeacher(self.shared.path, outputs), features, cache_dir, key, outputs,
                              layers=[1], batch_size=4)
    cache = teacher_cache.open_cache(cache_dir, key, outputs, layers=[1])
    logs, weights = {}, {}
    for name in ("online", "cached"):
      student = tiny.tiny_classifier(seed=4, classifier_stddev=0.5, num_hidden_layers=1, hidden_size=16,
                                     intermediate_size=32)
      keras.utils.set_random_seed(9)  # the same projection initial weights for both
      if name == "cached":
        # The cache is the teacher source: logits and intermediates come from it, by example_index.
        distiller = Distiller(student, cache, alpha=0.5, matches=matches)
        batch = {**features, "example_index": np.arange(6)}
      else:
        distiller = Distiller(student, self.teacher, alpha=0.5, matches=matches)
        batch = features
      distiller.compile(optimizer=keras.optimizers.SGD(0.1))
      logs[name] = distiller.train_on_batch(batch, labels, return_dict=True)
      weights[name] = _values(distiller.trainable_variables)
    for metric in ("loss", "feature_loss", "kd_loss", "hard_loss"):
      self.assertAllClose(logs["cached"][metric], logs["online"][metric], rtol=2e-3, msg=metric)  # float16 cache
    for cached, online in zip(weights["cached"], weights["online"]):
      self.assertAllClose(cached, online, atol=2e-3)
    # The same layout as the online teacher: per-layer lists, None where a layer is not cached.
    cached = cache({**{k: tf.constant(v) for k, v in features.items()}, "example_index": tf.range(6)},
                   outputs=("hidden_states",))
    self.assertEqual(cached["hidden_states"][0], None)
    self.assertLen(cached["hidden_states"], 2)
    unindexed = Distiller(tiny.tiny_classifier(seed=4, num_hidden_layers=1, hidden_size=16, intermediate_size=32),
                          cache, matches=matches)
    unindexed.compile(optimizer=keras.optimizers.SGD(0.1))
    with self.assertRaisesRegex(ValueError, "lack 'example_index'"):
      unindexed.train_on_batch(features, labels)

  def test_many_matches_with_trainable_word_embeddings(self):
    # TinyBERT's shape of objective: many match terms, the word embeddings trained. At the real tinybert4 size the
    # terms summed with `+=` made Grappler's AddOpsRewrite emit a TemporaryVariable that failed with
    # AlreadyExistsError (TF issue 33713); the sum is now one tf.add_n. This tiny size trains either way: the
    # real-size check is the tinybert4 preset run (bench/PRESETS.md).
    features, labels = _features_and_labels()
    student = tiny.tiny_classifier(seed=4, num_hidden_layers=2, hidden_size=16, intermediate_size=32)
    student.embeddings.word_embeddings.trainable = True
    matches = parse_matches("hidden_mse,attention_mse_scores", 2, 2, "0:0,uniform") * 2
    self.assertLen(matches, 10)
    teacher = SavedModelTeacher(self.shared.path, ("logits", "hidden_states", "embeddings", "attention_scores"))
    distiller = Distiller(student, teacher, alpha=1.0, matches=matches)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3))
    before = student.embeddings.word_embeddings.embeddings.numpy().copy()
    fit = distiller.fit(make_dataset({**features, "label_ids": labels}, 3, training=True), epochs=2, verbose=0)
    self.assertTrue(np.all(np.isfinite(fit.history["loss"])))
    self.assertNotAllClose(student.embeddings.word_embeddings.embeddings.numpy(), before)

  def test_bilstm_student_takes_no_matches(self):
    from tf_distill.students.bilstm import BiLstmConfig, build_bilstm_student  # pylint: disable=import-outside-toplevel
    student = build_bilstm_student(BiLstmConfig(vocab_size=tiny.VOCAB_SIZE, embedding_size=8, lstm_units=8,
                                                hidden_units=8))
    with self.assertRaisesRegex(ValueError, "intermediate matches need a BERT student"):
      Distiller(student, self.teacher, matches=parse_matches("hidden_mse", 1, 2))

  def test_staged_weights_switch_terms_off(self):
    features, labels = _features_and_labels()
    student = tiny.tiny_classifier(seed=4, num_hidden_layers=1)
    distiller = Distiller(student, self.teacher, alpha=0.5, matches=parse_matches("hidden_mse", 1, 2))
    distiller.compile(optimizer=keras.optimizers.SGD(0.0))
    both = distiller.train_on_batch(features, labels, return_dict=True)
    distiller.logits_weight.assign(0.0)
    features_only = distiller.train_on_batch(features, labels, return_dict=True)
    self.assertAllClose(features_only["loss"], both["feature_loss"], rtol=1e-5)
    distiller.logits_weight.assign(1.0)
    distiller.feature_weight.assign(0.0)
    logits_only = distiller.train_on_batch(features, labels, return_dict=True)
    self.assertAllClose(logits_only["loss"], 0.5 * both["hard_loss"] + 0.5 * both["kd_loss"], rtol=1e-5)


class MixedPrecisionTest(_TinyTeacherTestCase):
  """--mixed_precision: the same online step under a mixed Keras policy tracks the float32 one."""

  @parameterized.named_parameters(("bfloat16", "mixed_bfloat16", 3e-2), ("float16", "mixed_float16", 3e-3))
  def test_mixed_step_tracks_float32(self, policy, rtol):
    features, labels = _features_and_labels()
    logs, weights = {}, {}
    for name in ("float32", policy):
      keras.mixed_precision.set_global_policy(name)
      try:
        student = tiny.tiny_classifier(seed=3, classifier_stddev=0.5, num_hidden_layers=1)
        distiller = Distiller(student, self.teacher, alpha=0.5, temperature=2.0)
        distiller.compile(optimizer=keras.optimizers.SGD(0.1))
        logs[name] = distiller.train_on_batch(features, labels, return_dict=True)
        weights[name] = _values(student.trainable_variables)
      finally:
        keras.mixed_precision.set_global_policy("float32")
    self.assertEqual(student.encoder_layers[0].query.compute_dtype, policy.split("_")[1])
    self.assertTrue(all(v.dtype == tf.float32 for v in student.trainable_variables))  # float32 checkpoints/exports
    self.assertEqual(isinstance(distiller.optimizer, keras.mixed_precision.LossScaleOptimizer),
                     policy == "mixed_float16")
    for metric in ("loss", "hard_loss", "kd_loss"):
      self.assertAllClose(logs[policy][metric], logs["float32"][metric], rtol=rtol, msg=metric)
    for mixed, full in zip(weights[policy], weights["float32"]):
      self.assertAllClose(mixed, full, atol=10 * rtol)


class CallbacksTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(("loss", "loss"), ("hard_loss", "hard_loss"), ("kd_loss", "kd_loss"))
  def test_stop_on_non_finite_names_the_term(self, term):
    callback = StopOnNonFiniteLoss()
    callback.on_epoch_begin(2)
    logs = {"loss": 1.0, "hard_loss": 0.5, "kd_loss": 0.25, "accuracy": float("nan")}
    callback.on_train_batch_end(3, logs)  # finite losses (accuracy is not watched) pass
    logs[term] = float("nan")
    with self.assertRaisesRegex(NonFiniteLossError, rf"^{term} became nan at epoch 3, step 4; training stopped"):
      callback.on_train_batch_end(3, logs)
    logs[term] = float("inf")
    with self.assertRaisesRegex(NonFiniteLossError, rf"^{term} became inf at epoch 3, step 4"):
      callback.on_train_batch_end(3, logs)

  def test_fit_stops_on_a_nan_loss(self):
    student = tiny.tiny_classifier(seed=2, num_hidden_layers=1)
    student.classifier.bias.assign([float("nan"), 0.0])
    distiller = Distiller(student, None, alpha=0.0)
    distiller.compile(optimizer=keras.optimizers.SGD(0.1))
    features, labels = _features_and_labels()
    dataset = make_dataset({**features, "label_ids": labels}, batch_size=2, training=False)
    with self.assertRaisesRegex(NonFiniteLossError, r"^loss became nan at epoch 1, step 1;"):
      distiller.fit(dataset, epochs=1, verbose=0, callbacks=[StopOnNonFiniteLoss()])
    self.assertEqual(int(distiller.optimizer.iterations), 1)  # stopped after the first step
    self.assertTrue(issubclass(NonFiniteLossError, FloatingPointError))  # the CLIs report these as one line

  def test_keep_best_student_saves_on_improvement_only(self):
    student = tiny.tiny_classifier(seed=4, num_hidden_layers=1)
    distiller = Distiller(student, None, alpha=0.0)
    path = os.path.join(self.get_temp_dir(), "keep_best", "best", "student")
    callback = KeepBestStudent(path)
    callback.set_model(distiller)
    first = _values(student.weights)
    callback.on_epoch_end(0, {"val_accuracy": 0.5})
    self.assertEqual((callback.best, callback.best_epoch), (0.5, 1))
    self.assertTrue(os.path.isfile(path + ".index"))

    def saved():
      model = tiny.tiny_classifier(seed=9, num_hidden_layers=1)
      model.load_weights(path).expect_partial()
      return _values(model.weights)

    student.classifier.bias.assign([3.0, -3.0])
    callback.on_epoch_end(1, {"val_accuracy": 0.4})  # worse: not saved
    self.assertEqual(callback.best_epoch, 1)
    for a, b in zip(saved(), first):
      self.assertAllEqual(a, b)
    callback.on_epoch_end(2, {"val_accuracy": 0.75})
    self.assertEqual((callback.best, callback.best_epoch), (0.75, 3))
    self.assertAllEqual(saved()[-1], [3.0, -3.0])  # classifier bias is the last weight

  def test_keep_best_student_ignores_epochs_before_first_epoch(self):
    """A quantisation-aware run keeps a student of its qat stage, however well an earlier float epoch scored."""
    path = os.path.join(self.get_temp_dir(), "keep_qat", "student")
    callback = KeepBestStudent(path, first_epoch=1)
    callback.set_model(Distiller(tiny.tiny_classifier(seed=4, num_hidden_layers=1), None, alpha=0.0))
    callback.on_epoch_end(0, {"val_accuracy": 0.9})
    self.assertIsNone(callback.best_epoch)
    self.assertFalse(os.path.exists(path + ".index"))
    callback.on_epoch_end(1, {"val_accuracy": 0.6})
    self.assertEqual((callback.best, callback.best_epoch), (0.6, 2))
    self.assertTrue(os.path.isfile(path + ".index"))

  def test_keep_best_student_with_a_bare_file_name(self):
    student = tiny.tiny_classifier(seed=4, num_hidden_layers=1)
    callback = KeepBestStudent("best_student")
    callback.set_model(Distiller(student, None, alpha=0.0))
    cwd = os.getcwd()
    os.chdir(tempfile.mkdtemp(dir=self.get_temp_dir()))
    try:
      callback.on_epoch_end(0, {"val_accuracy": 0.5})
      self.assertTrue(os.path.isfile("best_student.index"))
    finally:
      os.chdir(cwd)

  def test_keep_best_student_without_validation_data(self):
    callback = KeepBestStudent(os.path.join(self.get_temp_dir(), "kb", "student"))
    with self.assertRaisesRegex(ValueError, r"monitors 'val_accuracy' but the logs have \['accuracy', 'loss'\]"):
      callback.on_epoch_end(0, {"loss": 1.0, "accuracy": 0.5})


class OptimizationTest(tf.test.TestCase, parameterized.TestCase):

  def test_warmup_linear_decay_values(self):
    schedule = WarmupLinearDecay(1e-3, total_steps=10, warmup_steps=4)
    # lr = peak * step / 4 before step 4, then peak * (10 - step) / 6, and 0 after step 10.
    expected = {0: 0.0, 1: 2.5e-4, 2: 5e-4, 4: 1e-3, 7: 5e-4, 9: 1e-3 / 6, 10: 0.0, 13: 0.0}
    for step, lr in expected.items():
      self.assertAllClose(schedule(step), lr, atol=1e-9, msg=f"step {step}")

  def test_no_warmup_starts_at_peak(self):
    schedule = WarmupLinearDecay(2.0, total_steps=4, warmup_steps=0)
    self.assertAllClose([schedule(s) for s in range(5)], [2.0, 1.5, 1.0, 0.5, 0.0])

  def test_get_config_round_trip(self):
    schedule = WarmupLinearDecay(3e-5, total_steps=100, warmup_steps=10)
    config = schedule.get_config()
    self.assertEqual(config, {"peak_learning_rate": 3e-5, "total_steps": 100, "warmup_steps": 10})
    clone = WarmupLinearDecay.from_config(config)
    for step in (0, 5, 10, 50, 100):
      self.assertAllClose(clone(step), schedule(step))
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule), custom_objects={"WarmupLinearDecay": WarmupLinearDecay})
    self.assertAllClose(restored(50), schedule(50))

  @parameterized.named_parameters(
      ("no_steps", 0, 0, r"total_steps must be >= 1, got 0"),
      ("warmup_too_long", 10, 10, r"warmup_steps must be in \[0, total_steps=10\), got 10"),
      ("negative_warmup", 10, -1, r"warmup_steps must be in \[0, total_steps=10\), got -1"),
  )
  def test_schedule_errors(self, total, warmup, message):
    with self.assertRaisesRegex(ValueError, message):
      WarmupLinearDecay(1e-3, total_steps=total, warmup_steps=warmup)

  def test_weight_decay_skips_layer_norm_and_bias(self):
    optimizer = create_optimizer(0.1, total_steps=10, warmup_proportion=0.0, weight_decay=0.5)
    names = ("layer_0/attention_LayerNorm/gamma", "layer_0/query/bias", "layer_0/query/kernel")
    variables = [tf.Variable(np.full([3], 2.0, np.float32), name=name) for name in names]
    optimizer.apply_gradients([(tf.zeros([3]), v) for v in variables])  # zero gradients: only decay can move them
    self.assertAllClose(variables[0], [2.0] * 3)
    self.assertAllClose(variables[1], [2.0] * 3)
    self.assertAllClose(variables[2], [2.0 * (1 - 0.1 * 0.5)] * 3)  # lr 0.1 at step 0 without warm-up


class StudentInitTest(tf.test.TestCase, parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.shared = tiny.shared_teacher()
    cls.teacher = SavedModelTeacher(cls.shared.path)

  def _assert_layer_copied(self, student_layer, teacher_layer):
    self.assertLen(student_layer.trainable_weights, 16)
    for s, t in zip(student_layer.trainable_weights, teacher_layer.trainable_weights):
      self.assertEqual(s.name.split("/")[2:], t.name.split("/")[2:])
      self.assertAllEqual(s, t, msg=s.name)

  @parameterized.named_parameters(("layer_2", (2,)), ("reversed", (2, 1)), ("repeated", (1, 1, 2)))
  def test_init_layers_copy_the_named_teacher_layers(self, init_layers):
    config = BertStudentConfig(num_hidden_layers=len(init_layers), init_from_layers=init_layers)
    student = build_bert_student(self.teacher.bert_config, config, self.teacher.variables)
    keras_teacher = self.shared.model
    self.assertEqual(student.config.num_hidden_layers, len(init_layers))
    for i, t in enumerate(init_layers):  # teacher layer t (1-based) is the Keras model's encoder_layers[t - 1]
      self._assert_layer_copied(student.encoder_layers[i], keras_teacher.encoder_layers[t - 1])
    for s, t in zip(student.embeddings.weights + student.pooler.weights + student.classifier.weights,
                    keras_teacher.embeddings.weights + keras_teacher.pooler.weights + keras_teacher.classifier.weights):
      self.assertAllEqual(s, t, msg=s.name)

  def test_copying_every_layer_reproduces_the_teacher(self):
    student = build_bert_student(self.teacher.bert_config, BertStudentConfig(num_hidden_layers=2, init_from_layers=(1, 2)),
                                 self.teacher.variables)
    features = tiny.random_features(4, 12, seed=8, segment_b=True)
    self.assertAllClose(student(features, training=False)["logits"], self.teacher(features)["logits"], atol=1e-6)

  def test_random_init_differs_from_the_teacher(self):
    student = build_bert_student(self.teacher.bert_config, BertStudentConfig(num_hidden_layers=1))
    self.assertNotAllClose(student.encoder_layers[0].query.kernel, self.shared.model.encoder_layers[0].query.kernel)

  def test_student_config_overrides(self):
    config = student_bert_config(self.teacher.bert_config, BertStudentConfig(
        num_hidden_layers=1, hidden_size=16, num_attention_heads=2, intermediate_size=24))
    self.assertEqual((config.num_hidden_layers, config.hidden_size, config.num_attention_heads,
                      config.intermediate_size), (1, 16, 2, 24))
    self.assertEqual((config.vocab_size, config.max_position_embeddings, config.num_labels), (100, 32, 2))

  def test_width_mismatch(self):
    config = BertStudentConfig(num_hidden_layers=1, hidden_size=16, num_attention_heads=2, init_from_layers=(1,))
    with self.assertRaisesRegex(ValueError, r"cannot initialise student .*embeddings.* \(100, 16\) from teacher "
                                r".*\(100, 32\): initialising from teacher layers needs the teacher's hidden_size"):
      build_bert_student(self.teacher.bert_config, config, self.teacher.variables)

  def test_layer_out_of_range(self):
    config = BertStudentConfig(num_hidden_layers=2, init_from_layers=(2, 3))
    with self.assertRaisesRegex(ValueError, r"student_init_from_layers names teacher layer 3, but the teacher has "
                                r"layers 1\.\.2"):
      build_bert_student(self.teacher.bert_config, config, self.teacher.variables)

  def test_init_layers_need_teacher_variables(self):
    with self.assertRaisesRegex(ValueError, "student_init_from_layers needs the teacher's variables"):
      build_bert_student(self.teacher.bert_config, BertStudentConfig(num_hidden_layers=1, init_from_layers=(1,)))


if __name__ == "__main__":
  tf.test.main()
