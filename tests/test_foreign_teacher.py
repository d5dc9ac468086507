"""Foreign teacher SavedModels (tf_distill.foreign_teacher): a TF1 graph export as Google BERT's run_classifier.py
writes it (input_ids/input_mask/segment_ids/label_ids -> probabilities only) and a Keras export with the TF2 input
names. Both are built here from known numpy weights; the soft targets are checked against numpy."""

import dataclasses
import json
import os
import shutil
import tempfile

import tf_distill  # noqa: F401
import numpy as np
import tensorflow as tf
import tf_keras as keras

from tf_distill.configs import (BertStudentConfig, DataConfig, DistillConfig, ForeignTeacherConfig, StudentConfig,
                                TrainConfig)
from tf_distill.foreign_teacher import ForeignSavedModelTeacher
from tf_distill.run import DistillRun
from tf_distill.students import build_student
from tf_distill.teacher import TeacherError
from tf_distill.teacher_sources import load_teacher
from tests import tiny

SEQ = 16
HIDDEN = 8
T = 2.0


def weights(seed=0):
  rng = np.random.default_rng(seed)
  return (rng.normal(0, 1, [tiny.VOCAB_SIZE, HIDDEN]).astype(np.float32),
          rng.normal(0, 1, [2, HIDDEN]).astype(np.float32),
          rng.normal(0, 1, [HIDDEN, 2]).astype(np.float32), rng.normal(0, 1, [2]).astype(np.float32))


def numpy_logits(features, w):
  """Masked mean of word + segment embeddings, then a dense layer: the logits z of both exports."""
  emb, seg, kernel, bias = w
  x = emb[features["input_ids"]] + seg[features["segment_ids"]]
  mask = features["input_mask"][..., None].astype(np.float32)
  pooled = (x * mask).sum(1) / mask.sum(1)
  return pooled @ kernel + bias


def softmax(z):
  e = np.exp(z - z.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def write_tf1_export(path, w):
  """run_classifier.py's serving export: TF1 graph, fixed length SEQ, a dummy label_ids, `probabilities` only."""
  v1 = tf.compat.v1
  with tf.Graph().as_default(), v1.Session() as sess:
    ids = v1.placeholder(tf.int32, [None, SEQ], "input_ids")
    mask = v1.placeholder(tf.int32, [None, SEQ], "input_mask")
    segments = v1.placeholder(tf.int32, [None, SEQ], "segment_ids")
    label_ids = v1.placeholder(tf.int32, [None], "label_ids")
    emb, seg, kernel, bias = (v1.Variable(x, name=n) for x, n in zip(w, ("word", "segment", "kernel", "bias")))
    x = tf.gather(emb, ids) + tf.gather(seg, segments)
    m = tf.cast(mask, tf.float32)[..., None]
    logits = tf.matmul(tf.reduce_sum(x * m, 1) / tf.reduce_sum(m, 1), kernel) + bias
    probabilities = tf.nn.softmax(logits, name="probabilities")
    sess.run(v1.global_variables_initializer())
    builder = v1.saved_model.Builder(path)
    signature = v1.saved_model.predict_signature_def(
        inputs={"input_ids": ids, "input_mask": mask, "segment_ids": segments, "label_ids": label_ids},
        outputs={"probabilities": probabilities})
    builder.add_meta_graph_and_variables(sess, ["serve"], signature_def_map={"serving_default": signature})
    builder.save()
  return path


def write_keras_export(path, w):
  """A Keras model with TF2 names (input_word_ids, input_mask, input_type_ids) returning log-probabilities."""
  emb, seg, kernel, bias = w
  inputs = {n: keras.Input([None], dtype=tf.int32, name=n) for n in ("input_word_ids", "input_mask", "input_type_ids")}
  word = keras.layers.Embedding(tiny.VOCAB_SIZE, HIDDEN, weights=[emb])(inputs["input_word_ids"])
  segment = keras.layers.Embedding(2, HIDDEN, weights=[seg])(inputs["input_type_ids"])
  m = keras.layers.Lambda(lambda t: tf.cast(t, tf.float32)[..., None])(inputs["input_mask"])
  pooled = keras.layers.Lambda(lambda a: tf.reduce_sum((a[0] + a[1]) * a[2], 1) / tf.reduce_sum(a[2], 1))(
      [word, segment, m])
  dense = keras.layers.Dense(2, weights=[kernel, bias])(pooled)
  model = keras.Model(inputs, keras.layers.Lambda(tf.nn.log_softmax)(dense))

  @tf.function(input_signature=[{n: tf.TensorSpec([None, None], tf.int32, n) for n in inputs}])
  def serve(features):
    return {"log_probs": model(features)}

  tf.saved_model.save(model, path, signatures={"classify": serve.get_concrete_function()})
  return path


class ForeignTeacherTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = tempfile.mkdtemp(prefix="foreign_teacher")
    cls.w1, cls.w2 = weights(1), weights(2)
    cls.tf1_path = write_tf1_export(os.path.join(cls.root, "bert_export", "1"), cls.w1)
    cls.keras_path = write_keras_export(os.path.join(cls.root, "keras_export"), cls.w2)
    cls.vocab = tiny.write_vocab(os.path.join(cls.root, "vocab.txt"))
    cls.features = tiny.random_features(5, 12, seed=3, segment_b=True)

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.root, ignore_errors=True)
    super().tearDownClass()

  def tf1_teacher(self, **kw):
    config = ForeignTeacherConfig(output_kind="probabilities", **kw)
    return ForeignSavedModelTeacher(config, os.path.dirname(self.tf1_path), tiny.LABELS, self.vocab)

  @staticmethod
  def write_bert_config(directory):
    path = os.path.join(directory, "bert_config.json")
    with open(path, "w", encoding="utf-8") as f:
      json.dump(dataclasses.asdict(tiny.tiny_config()), f)
    return path

  def test_tf1_probabilities_export_soft_targets(self):
    teacher = self.tf1_teacher()
    out = teacher({k: tf.constant(v) for k, v in self.features.items()}, ("logits", "probabilities"))
    z = numpy_logits(self.features, self.w1)
    p = softmax(z)
    soft = softmax(out["logits"].numpy() / T)
    self.assertAllClose(soft, softmax(np.log(p) / T), atol=1e-5)
    self.assertAllClose(soft, softmax(z / T), atol=1e-5)  # softmax(log p / T) = softmax(z / T)
    self.assertAllClose(out["probabilities"], p, atol=1e-5)

  def test_keras_export_with_other_input_names_and_log_probabilities(self):
    config = ForeignTeacherConfig(signature="classify", output_kind="log_probabilities",
                                  input_map="input_ids=input_word_ids,segment_ids=input_type_ids")
    teacher = ForeignSavedModelTeacher(config, self.keras_path, tiny.LABELS, self.vocab)
    out = teacher({k: tf.constant(v) for k, v in self.features.items()}, ("logits",))
    z = numpy_logits(self.features, self.w2)
    self.assertAllClose(softmax(out["logits"].numpy() / T), softmax(z / T), atol=1e-5)

  def test_load_teacher_picks_the_foreign_reader_and_the_flags_labels(self):
    distill = DistillConfig(teacher_model=self.tf1_path, foreign=ForeignTeacherConfig(output_kind="probabilities"))
    teacher = load_teacher(distill, DataConfig(task_name="csv", data_dir="x", labels=tiny.LABELS,
                                               vocab_file=self.vocab))
    self.assertIsInstance(teacher, ForeignSavedModelTeacher)
    self.assertEqual(teacher.labels, list(tiny.LABELS))

  def test_intermediate_losses_refused_naming_what_is_missing(self):
    with self.assertRaisesRegex(TeacherError, r"serves logits only; the chosen intermediate losses need "
                                r"\['hidden_states'\], which only a tf_distill teacher export has"):
      self.tf1_teacher().check_outputs(("logits", "hidden_states"))

  def test_missing_labels_vocab_signature_and_input(self):
    config = ForeignTeacherConfig(output_kind="probabilities")
    with self.assertRaisesRegex(TeacherError, r"label list must come from --labels"):
      ForeignSavedModelTeacher(config, self.tf1_path, None, self.vocab)
    with self.assertRaisesRegex(TeacherError, r"vocab must come from --vocab_file"):
      ForeignSavedModelTeacher(config, self.tf1_path, tiny.LABELS, None)
    with self.assertRaisesRegex(TeacherError, r"no signature 'predict'; it has \['serving_default'\]"):
      self.tf1_teacher(signature="predict")
    with self.assertRaisesRegex(TeacherError, r"has no input for input_ids \(tried \['ids'\]"):
      self.tf1_teacher(input_map="input_ids=ids")
    with self.assertRaisesRegex(TeacherError, r"no output 'logits'; it has \['probabilities'\]"):
      self.tf1_teacher(output="logits")

  def test_augmentation_with_a_foreign_teacher_uses_the_embeddings_file(self):
    """A foreign teacher has no tf_distill variables: augmentation reads --embeddings_file, and without it names it."""
    work = tempfile.mkdtemp(dir=self.root)
    data_dir = tiny.write_csv_task(os.path.join(work, "data"), num_train=6, num_dev=4, num_test=4)
    bert_config = self.write_bert_config(work)
    glove = os.path.join(work, "glove.txt")
    with open(glove, "w", encoding="utf-8") as f:
      f.write("".join(f"{word} {i % 3} {i % 5} 1\n" for i, word in enumerate(tiny.VOCAB[5:])))
    foreign = ForeignTeacherConfig(output_kind="probabilities", bert_config_file=bert_config)

    def run(embeddings_file):
      return DistillRun(DataConfig(task_name="csv", data_dir=data_dir, labels=tiny.LABELS, vocab_file=self.vocab,
                                   max_seq_length=12),
                        TrainConfig(output_dir=os.path.join(work, "run"), train_batch_size=4, num_train_epochs=1),
                        DistillConfig(teacher_model=os.path.dirname(self.tf1_path), foreign=foreign,
                                      augmentation="tang:n=2,p_mask=0.3,p_pos=0.5,p_ng=0", embeddings_file=embeddings_file),
                        StudentConfig(bert=BertStudentConfig(num_hidden_layers=1)))

    labels = run(glove).load_data().features["train"]["label_ids"]
    self.assertEqual(int(np.sum(labels >= 0)), 6)
    self.assertGreater(int(np.sum(labels == -1)), 0)  # the variants, teacher-labelled only
    with self.assertRaisesRegex(TeacherError, "--embeddings_file"):
      run(None).load_data()

  def test_shapes_an_uninitialised_bert_student_and_refuses_an_initialised_one(self):
    config_file = self.write_bert_config(self.root)
    teacher = ForeignSavedModelTeacher(ForeignTeacherConfig(output_kind="probabilities"), self.tf1_path, tiny.LABELS,
                                       self.vocab, bert_config_file=config_file)
    student = build_student(StudentConfig(bert=BertStudentConfig(num_hidden_layers=1)), teacher)
    self.assertEqual((student.config.num_hidden_layers, student.config.hidden_size), (1, 32))
    with self.assertRaisesRegex(TeacherError, "no tf_distill variable names to initialise a student from"):
      build_student(StudentConfig(bert=BertStudentConfig(num_hidden_layers=1, init_from_layers=(2,))), teacher)

  def test_mse_refused_for_probability_outputs(self):
    with self.assertRaisesRegex(ValueError, r"kd_loss 'mse' matches raw logits, but "
                                r"--teacher_output_kind=probabilities"):
      DistillConfig(teacher_model="x", kd_loss="mse", temperature=1.0,
                    foreign=ForeignTeacherConfig(output_kind="probabilities")).validate()


if __name__ == "__main__":
  tf.test.main()
