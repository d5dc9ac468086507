"""Already fine-tuned classifiers exported as teachers (tf_distill.finetuned, export_teacher --init_checkpoint).

The checkpoints are written here without the code under test: a random transformers TFBertForSequenceClassification
and TFBertForQuestionAnswering saved with save_pretrained (tf_model.h5 and TF safetensors), PyTorch-layout
model.safetensors, and a Google BERT TF1 checkpoint with run_classifier.py's variable names, all from known numpy
weights. The references are transformers' own TF BERT models on the same weights (loaded by transformers' PyTorch ->
TF converter for the PyTorch and Google weights, with the tanh gelu of Google's modeling.py). Then the real programs:
export_teacher on each kind, its errors as one line, and a Google checkpoint, a Hugging Face classifier and a Hugging
Face QA model (on tiny SQuAD files) distilled into tiny students end to end.
"""

import concurrent.futures
import json
import os
import shutil
import tempfile

import tf_distill  # noqa: F401  pylint: disable=unused-import
import numpy as np
import tensorflow as tf
from safetensors.numpy import save_file
import transformers
from transformers.modeling_tf_pytorch_utils import load_pytorch_state_dict_in_tf2_model

from tf_distill.bert import MASKED_LOGIT
from tf_distill.configs import FinetunedCheckpointConfig
from tf_distill.finetuned import CheckpointError, export_finetuned, load_finetuned, tf_name_to_hf
from tf_distill.run_dir import RunDir
from tf_distill.teacher import SavedModelTeacher

import tiny
from test_cli import COMMON_TRAIN_ARGS, _describe, run_cli
from test_question_answering import write_squad_task

HF_LABELS = ["neg", "neutral", "pos"]
SEQ = 16
QA_SEQ = 32  # the QA export's max_seq_length: SQuAD windows of question and context (tests/tiny.py's 32 positions)


def hf_config(num_labels, hidden_act="gelu", **overrides):
  """transformers' BertConfig of the tiny shape (tests/tiny.py), no dropout."""
  c = tiny.tiny_config()
  return transformers.BertConfig(
      vocab_size=c.vocab_size, hidden_size=c.hidden_size, num_hidden_layers=c.num_hidden_layers,
      num_attention_heads=c.num_attention_heads, intermediate_size=c.intermediate_size,
      max_position_embeddings=c.max_position_embeddings, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
      hidden_act=hidden_act, num_labels=num_labels, **overrides)


def hf_inputs(features):
  return dict(input_ids=features["input_ids"], attention_mask=features["input_mask"],
              token_type_ids=features["segment_ids"])


def randomized(model, seed):
  """`model` (a transformers TF model) built, with every weight drawn at random (biases and LayerNorms too, so a bias
  or gamma/beta mix-up shows)."""
  model(model.dummy_inputs)
  rng = np.random.default_rng(seed)
  for w in model.weights:
    base = 1.0 if "gamma" in w.name else 0.0
    w.assign(base + rng.normal(0.0, 0.2, w.shape).astype(np.float32))
  return model


def random_tf_hf_classifier(seed=0):
  """A random TFBertForSequenceClassification, labels HF_LABELS."""
  return randomized(transformers.TFBertForSequenceClassification(hf_config(
      3, id2label=dict(enumerate(HF_LABELS)), label2id={n: i for i, n in enumerate(HF_LABELS)})), seed)


def qa_pt_state(seed):
  """BertForQuestionAnswering weights under PyTorch names: no pooler, `qa_outputs` [2, hidden] (start, end)."""
  state = {k: v for k, v in pt_state(seed, num_labels=2).items() if not k.startswith("bert.pooler.")}
  return {k.replace("classifier.", "qa_outputs."): v for k, v in state.items()}


def pt_state(seed, num_labels):
  """BERT classifier weights under PyTorch names and layout ([out, in]); dense weights scaled up (std 0.2) so that
  the FFN pre-activations reach the range where the two gelus differ."""
  state = tiny.hf_state_dict(tiny.tiny_config(), seed=seed)
  for key, value in state.items():
    if value.ndim == 2 and "embeddings" not in key:
      state[key] = (4.0 * value).astype(np.float32)
  rng = np.random.default_rng(seed + 100)
  state["classifier.weight"] = rng.normal(0.0, 1.0, [num_labels, 32]).astype(np.float32)
  state["classifier.bias"] = rng.normal(0.0, 0.5, [num_labels]).astype(np.float32)
  return state


def reference_from_pt_state(state, num_labels, hidden_act, model_class=transformers.TFBertForSequenceClassification):
  """transformers' TF model (a classifier by default) with `state` loaded by transformers' own PyTorch -> TF name
  converter."""
  model = model_class(hf_config(num_labels, hidden_act))
  model(model.dummy_inputs)
  _, info = load_pytorch_state_dict_in_tf2_model(model, dict(state), allow_missing_keys=True,
                                                 output_loading_info=True)
  assert not info["missing_keys"] and not info["mismatched_keys"], info
  return model


def google_name(pt_key):
  """PyTorch BERT key -> (Google BERT variable name, transpose), written out from modeling.py's scopes."""
  if pt_key == "classifier.weight":
    return "output_weights", False  # run_classifier.py keeps it [labels, hidden]
  if pt_key == "classifier.bias":
    return "output_bias", False
  parts = ["bert"] + pt_key.split(".")
  if parts[-2] in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
    return "/".join(parts[:-1]), False
  if "LayerNorm" in parts:
    return "/".join(parts[:-1] + ["gamma" if parts[-1] == "weight" else "beta"]), False
  name = "/".join(parts[:-1]).replace("encoder/layer/", "encoder/layer_")
  return name + ("/kernel" if parts[-1] == "weight" else "/bias"), parts[-1] == "weight"


def write_google_checkpoint(directory, state, step=7):
  """run_classifier.py's output: model.ckpt-<step> with bert/..., output_weights, output_bias, global_step and Adam
  slots (which a reader must skip), plus bert_config.json and vocab.txt."""
  v1 = tf.compat.v1
  os.makedirs(directory, exist_ok=True)
  with tf.Graph().as_default(), v1.Session() as sess:
    for key, value in state.items():
      if key.endswith("position_ids"):
        continue
      name, transpose = google_name(key[len("bert."):] if key.startswith("bert.") else key)
      v1.Variable(value.T if transpose else value, name=name)
    v1.Variable(np.zeros([32, 32], np.float32), name="bert/pooler/dense/kernel/adam_m")
    v1.train.get_or_create_global_step()
    sess.run(v1.global_variables_initializer())
    prefix = v1.train.Saver().save(sess, os.path.join(directory, "model.ckpt"), global_step=step)
  c = tiny.tiny_config()
  with open(os.path.join(directory, "bert_config.json"), "w", encoding="utf-8") as f:
    json.dump({"attention_probs_dropout_prob": 0.1, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
               "hidden_size": c.hidden_size, "initializer_range": 0.02, "intermediate_size": c.intermediate_size,
               "max_position_embeddings": c.max_position_embeddings, "num_attention_heads": c.num_attention_heads,
               "num_hidden_layers": c.num_hidden_layers, "type_vocab_size": 2, "vocab_size": c.vocab_size}, f)
  tiny.write_vocab(os.path.join(directory, "vocab.txt"))
  return prefix


def with_architectures(source, directory, architectures):
  """A copy of the Hugging Face directory `source` whose config.json names `architectures` (None: no such key)."""
  shutil.copytree(source, directory)
  with open(os.path.join(directory, "config.json"), encoding="utf-8") as f:
    config = json.load(f)
  config.pop("architectures", None)
  if architectures is not None:
    config["architectures"] = architectures
  with open(os.path.join(directory, "config.json"), "w", encoding="utf-8") as f:
    json.dump(config, f)
  return directory


def write_pt_safetensors_dir(directory, state, labels, architecture="BertForSequenceClassification"):
  """What PyTorch's `architecture`.save_pretrained writes (model.safetensors, format pt)."""
  os.makedirs(directory, exist_ok=True)
  config = hf_config(len(labels), id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)})
  config.architectures = [architecture]
  config.to_json_file(os.path.join(directory, "config.json"))
  save_file(state, os.path.join(directory, "model.safetensors"), metadata={"format": "pt"})
  tiny.write_vocab(os.path.join(directory, "vocab.txt"))
  return directory


class FinetunedTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.work = tempfile.mkdtemp(prefix="tf_distill_finetuned_")
    cls.features = tiny.random_features(5, SEQ, seed=11, segment_b=True)
    # Hugging Face, TF save_pretrained: tf_model.h5 and (safe_serialization) model.safetensors in TF names.
    cls.hf_model = random_tf_hf_classifier()
    cls.hf_reference = cls.hf_model(**hf_inputs(cls.features), output_hidden_states=True, training=False)
    for name, safe in (("hf_h5", False), ("hf_tf_safetensors", True)):
      cls.hf_model.save_pretrained(cls.path(name), safe_serialization=safe)
      tiny.write_vocab(cls.path(name, "vocab.txt"))
    # Hugging Face, PyTorch layout.
    cls.pt_state = pt_state(seed=3, num_labels=2)
    write_pt_safetensors_dir(cls.path("hf_pt"), cls.pt_state, ["neg", "pos"])
    # Google BERT, run_classifier.py: 2 labels, the same kind of weights.
    cls.google_state = pt_state(seed=5, num_labels=2)
    cls.google_prefix = write_google_checkpoint(cls.path("google"), cls.google_state)
    cls.google_flags = [f"--init_checkpoint={cls.google_prefix}", f"--bert_config_file={cls.path('google')}/"
                        "bert_config.json", f"--vocab_file={cls.path('google', 'vocab.txt')}", "--labels=neg,pos",
                        f"--max_seq_length={SEQ}", "--task_name=csv"]
    # Hugging Face BertForQuestionAnswering: TF save_pretrained (config.json without id2label) and PyTorch layout.
    cls.qa_model = randomized(transformers.TFBertForQuestionAnswering(hf_config(2)), seed=4)
    cls.qa_reference = cls.qa_model(**hf_inputs(cls.features), output_hidden_states=True, training=False)
    for name, safe in (("hf_qa_h5", False), ("hf_qa_tf_safetensors", True)):
      cls.qa_model.save_pretrained(cls.path(name), safe_serialization=safe)
      tiny.write_vocab(cls.path(name, "vocab.txt"))
    cls.qa_pt_state = qa_pt_state(seed=6)
    write_pt_safetensors_dir(cls.path("hf_qa_pt"), cls.qa_pt_state, ["LABEL_0", "LABEL_1"], "BertForQuestionAnswering")
    # Bad inputs: an encoder without a classifier, a directory without vocab.txt, QA weights under a config.json
    # that names the sequence classifier.
    tiny.write_pretrained_dir(cls.path("encoder_only"))
    shutil.copytree(cls.path("hf_tf_safetensors"), cls.path("no_vocab"))
    os.remove(cls.path("no_vocab", "vocab.txt"))
    with_architectures(cls.path("hf_qa_tf_safetensors"), cls.path("qa_named_classifier"),
                       ["BertForSequenceClassification"])
    tiny.write_csv_task(cls.path("data"))
    write_squad_task(cls.path("squad"))
    runs = {
        "export_hf": ["--init_checkpoint=hf_h5", "--export_dir=export", "--model_name=hf_teacher",
                      f"--max_seq_length={SEQ}"],
        "export_google": cls.google_flags + ["--export_dir=export", "--model_name=google_teacher"],
        # docs/teachers.md's Hugging Face path: a PyTorch-layout directory (labels neg, pos from its config) -> teacher.
        "export_hf_pt": ["--init_checkpoint=hf_pt", "--export_dir=export", f"--max_seq_length={SEQ}"],
        "no_classifier": ["--init_checkpoint=encoder_only", "--labels=neg,pos", "--export_dir=bad"],
        "label_count": [f if not f.startswith("--labels") else "--labels=neg,neutral,pos" for f in cls.google_flags]
                       + ["--export_dir=bad"],
        "no_vocab": ["--init_checkpoint=no_vocab", "--export_dir=bad"],
        "with_output_dir": ["--init_checkpoint=hf_h5", "--output_dir=runs/teacher", "--export_dir=bad"],
        # A Hugging Face QA model (tf_model.h5), no --task_name: exports as a squad teacher.
        "export_hf_qa": ["--init_checkpoint=hf_qa_h5", "--export_dir=export", "--model_name=hf_qa",
                         f"--max_seq_length={QA_SEQ}"],
        "qa_named_classifier": ["--init_checkpoint=qa_named_classifier", "--export_dir=bad"],
    }
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
      futures = {name: pool.submit(run_cli, "export_teacher", args, cls.work) for name, args in runs.items()}
      cls.results = {name: future.result() for name, future in futures.items()}
    for name in ("export_hf", "export_google", "export_hf_pt", "export_hf_qa"):
      if cls.results[name].returncode != 0:
        raise AssertionError(f"{name} failed: {_describe(cls.results[name])}")
    # End to end: each exported checkpoint teaches a 1-layer student for one epoch of the tiny CSV task, without
    # fine-tuning again (the Hugging Face one as docs/teachers.md says).
    student_args = ["--data_dir=data", "--student_num_layers=1", "--student_init_from_layers=2", "--alpha=0.5",
                    "--temperature=2"] + COMMON_TRAIN_ARGS
    distills = {"distill": ["--teacher_model=export/google_teacher", "--output_dir=runs/student"] + student_args,
                "distill_hf": ["--teacher_model=export/teacher", "--output_dir=runs/hf_student"] + student_args,
                # The QA export teaches a span student on tiny SQuAD files, as a train_teacher squad export does.
                "distill_hf_qa": ["--task_name=squad", "--data_dir=squad", "--teacher_model=export/hf_qa",
                                  f"--max_seq_length={QA_SEQ}", "--train_batch_size=8", "--num_train_epochs=1",
                                  "--learning_rate=1e-3", "--student_num_layers=1", "--student_init_from_layers=2",
                                  "--alpha=0.5", "--temperature=2", "--output_dir=runs/hf_qa_student"]}
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
      futures = {name: pool.submit(run_cli, "distill", args, cls.work) for name, args in distills.items()}
      cls.results.update({name: future.result() for name, future in futures.items()})

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.work, ignore_errors=True)
    super().tearDownClass()

  @classmethod
  def path(cls, *parts):
    return os.path.join(cls.work, *parts)

  def assertSpanLogits(self, logits, reference):
    """logits float32 [batch, 2, seq] are transformers' start_logits (row 0) and end_logits (row 1) at the real
    positions of self.features, and MASKED_LOGIT at padding (transformers' own there are unmasked)."""
    real = self.features["input_mask"].astype(bool)
    self.assertFalse(real.all())  # some padding to check
    logits = np.asarray(logits)
    self.assertEqual(logits.shape, (5, 2, SEQ))
    for row, expected in enumerate((reference.start_logits.numpy(), reference.end_logits.numpy())):
      self.assertGreater(np.abs(expected[real]).max(), 0.5)  # O(1) logits, not all near 0
      self.assertAllClose(logits[:, row][real], expected[real], atol=1e-4)
      self.assertAllEqual(logits[:, row][~real], np.full([(~real).sum()], MASKED_LOGIT, np.float32))

  def assertCleanError(self, name, message):
    result = self.results[name]
    self.assertEqual(result.returncode, 1, _describe(result))
    self.assertNotIn("Traceback (most recent call last)", result.stderr)
    self.assertRegex(result.stderr.strip().splitlines()[-1], "^error: " + message)

  # Hugging Face directories.

  def test_hf_export_has_both_signatures_and_matches_transformers(self):
    self.assertIn("exported teacher to export/hf_teacher/1", self.results["export_hf"].stdout)
    teacher = SavedModelTeacher(self.path("export", "hf_teacher"), required_outputs=("logits", "hidden_states"))
    self.assertEqual(teacher.labels, HF_LABELS)
    self.assertEqual(teacher.max_seq_length, SEQ)
    self.assertEqual(teacher.metadata["signatures"], ["distill", "serving_default", "serving_text"])
    out = teacher(self.features)
    self.assertGreater(np.abs(self.hf_reference.logits.numpy()).max(), 0.5)  # O(1) logits, not all near 0
    self.assertAllClose(out["logits"], self.hf_reference.logits, atol=1e-4)
    for layer in range(2):  # the distill signature's per-layer outputs are transformers' hidden states
      self.assertAllClose(out["hidden_states"][layer], self.hf_reference.hidden_states[layer + 1], atol=1e-4)

  def test_hf_token_classifier_loads_as_a_tagger_matching_transformers(self):
    """A BertForTokenClassification directory (no pooler; a classifier over every position) reads as a tagger: head
    "token", logits [batch, seq, tags] equal to transformers' own."""
    tags = ["O", "B-x", "I-x", "B-y"]
    model = transformers.TFBertForTokenClassification(hf_config(
        len(tags), id2label=dict(enumerate(tags)), label2id={n: i for i, n in enumerate(tags)}))
    model(model.dummy_inputs)
    rng = np.random.default_rng(8)
    for w in model.weights:
      w.assign((1.0 if "gamma" in w.name else 0.0) + rng.normal(0.0, 0.2, w.shape).astype(np.float32))
    model.save_pretrained(self.path("hf_tagger"), safe_serialization=True)
    tiny.write_vocab(self.path("hf_tagger", "vocab.txt"))
    reference = model(**hf_inputs(self.features), training=False).logits.numpy()
    loaded = load_finetuned(FinetunedCheckpointConfig(init_checkpoint=self.path("hf_tagger"), max_seq_length=SEQ))
    self.assertEqual(loaded.labels, tags)
    self.assertEqual(loaded.model.config.head, "token")
    self.assertIsNone(loaded.model.pooler)
    logits = loaded.model(self.features, training=False)["logits"].numpy()
    self.assertEqual(logits.shape, (5, SEQ, len(tags)))
    self.assertGreater(np.abs(reference).max(), 0.5)
    self.assertAllClose(logits, reference, atol=1e-4)

  def test_hf_qa_export_serves_transformers_start_and_end_logits(self):
    """A BertForQuestionAnswering tf_model.h5 exports as a squad span teacher: serving_default's logits [batch, 2,
    seq], start_logits and end_logits are transformers' (padding at MASKED_LOGIT), the distill signature has its
    hidden states, and the metadata is what a train_teacher squad run's export records."""
    self.assertIn("exported teacher to export/hf_qa/1", self.results["export_hf_qa"].stdout)
    teacher = SavedModelTeacher(self.path("export", "hf_qa"), required_outputs=("logits", "hidden_states"))
    metadata = teacher.metadata
    self.assertEqual(metadata["labels"], ["start", "end"])
    self.assertEqual(metadata["task_name"], "squad")
    self.assertFalse(metadata["text_pairs"])
    self.assertEqual(metadata["max_seq_length"], QA_SEQ)
    self.assertEqual(metadata["model_config"]["head"], "span")
    self.assertEqual(metadata["signatures"], ["distill", "serving_default", "serving_text", "serving_unmasked"])
    self.assertTrue(metadata["source"].endswith("tf_model.h5"))
    served = tf.saved_model.load(self.path("export", "hf_qa", "1")).signatures["serving_default"](
        **{k: tf.constant(v) for k, v in self.features.items()})
    self.assertSpanLogits(served["logits"], self.qa_reference)
    self.assertAllEqual(served["start_logits"], served["logits"][:, 0])
    self.assertAllEqual(served["end_logits"], served["logits"][:, 1])
    out = teacher(self.features)
    self.assertSpanLogits(out["logits"], self.qa_reference)
    for layer in range(2):
      self.assertAllClose(out["hidden_states"][layer], self.qa_reference.hidden_states[layer + 1], atol=1e-4)

  def test_hf_qa_safetensors_match_transformers(self):
    """TF safetensors (TF names `qa_outputs/kernel:0`) and PyTorch ones (`qa_outputs.weight`) read as the span head,
    labels start, end whatever id2label says; a config.json without `architectures` takes the head from qa_outputs."""
    pt_reference = reference_from_pt_state(self.qa_pt_state, 2, "gelu", transformers.TFBertForQuestionAnswering)(
        **hf_inputs(self.features), training=False)
    no_architectures = with_architectures(self.path("hf_qa_pt"), os.path.join(self.get_temp_dir(), "qa_unnamed"),
                                          None)
    for directory, labels, reference in (("hf_qa_tf_safetensors", None, self.qa_reference),
                                         ("hf_qa_pt", ("start", "end"), pt_reference),
                                         (no_architectures, None, pt_reference)):
      with self.subTest(directory=directory):
        loaded = load_finetuned(FinetunedCheckpointConfig(init_checkpoint=self.path(directory), labels=labels,
                                                          max_seq_length=SEQ))
        self.assertEqual(loaded.labels, ["start", "end"])
        self.assertEqual(loaded.model.config.head, "span")
        self.assertIsNone(loaded.model.pooler)
        self.assertTrue(loaded.source.endswith("model.safetensors"))
        self.assertSpanLogits(loaded.model(self.features, training=False)["logits"], reference)

  def test_tf_names_of_the_qa_head(self):
    for name in ("qa_outputs/kernel:0", "tf_bert_for_question_answering/qa_outputs/kernel:0"):
      self.assertEqual(tf_name_to_hf(name), ("qa_outputs.weight", True))
    self.assertEqual(tf_name_to_hf("tf_bert_for_question_answering/bert/encoder/layer_._1/output/dense/bias:0"),
                     ("encoder.layer.1.output.dense.bias", False))

  def test_hf_qa_refusals(self):
    classifier_named_qa = with_architectures(self.path("hf_tf_safetensors"),
                                             os.path.join(self.get_temp_dir(), "classifier_named_qa"),
                                             ["BertForQuestionAnswering"])
    qa = dict(init_checkpoint=self.path("hf_qa_h5"), max_seq_length=SEQ)
    for fields, message in (
        ({"init_checkpoint": self.path("qa_named_classifier")},
         r"has question-answering weights \(qa_outputs\) but .*qa_named_classifier/config.json names architectures "
         r"\['BertForSequenceClassification'\]"),
        ({"init_checkpoint": classifier_named_qa},
         r"config.json names BertForQuestionAnswering but .* has no qa_outputs weights \(it has \['classifier'\]\)"),
        ({**qa, "labels": ("LABEL_0", "LABEL_1")}, r"--labels=LABEL_0,LABEL_1 does not fit a question-answering "
                                                   r"model, whose two outputs are the start,end logits"),
    ):
      with self.subTest(message=message), self.assertRaisesRegex(CheckpointError, message):
        load_finetuned(FinetunedCheckpointConfig(**fields))
    export_dir = os.path.join(self.get_temp_dir(), "refused")
    for fields, message in (
        ({"task_name": "wnut17"}, r"--task_name=wnut17 is a tagging task but .*hf_qa_h5 is a question_answering "
                                  r"model \(head 'span', tasks \['squad'\]\)"),
        ({"text_pairs": True}, r"--text_pairs is for sentence-pair classifiers; .* is a question-answering model"),
    ):
      with self.subTest(message=message), self.assertRaisesRegex(CheckpointError, message):
        export_finetuned(FinetunedCheckpointConfig(**qa, **fields), export_dir, "teacher")
    self.assertFalse(os.path.exists(export_dir))

  def test_hf_tf_safetensors_matches_transformers(self):
    loaded = load_finetuned(FinetunedCheckpointConfig(init_checkpoint=self.path("hf_tf_safetensors"),
                                                      max_seq_length=SEQ))
    self.assertEqual(loaded.labels, HF_LABELS)
    self.assertTrue(loaded.source.endswith("model.safetensors"))
    self.assertAllClose(loaded.model(self.features, training=False)["logits"], self.hf_reference.logits, atol=1e-4)

  def test_hf_pytorch_safetensors_matches_transformers(self):
    reference = reference_from_pt_state(self.pt_state, 2, "gelu")(**hf_inputs(self.features), training=False)
    loaded = load_finetuned(FinetunedCheckpointConfig(init_checkpoint=self.path("hf_pt"), max_seq_length=SEQ))
    self.assertEqual(loaded.labels, ["neg", "pos"])
    self.assertEqual(loaded.model.config.hidden_act, "gelu")
    self.assertAllClose(loaded.model(self.features, training=False)["logits"], reference.logits, atol=1e-4)

  # Google BERT checkpoints.

  def test_google_checkpoint_has_run_classifier_names(self):
    names = dict(tf.train.list_variables(self.google_prefix))
    self.assertEqual(names["output_weights"], [2, 32])
    self.assertEqual(names["output_bias"], [2])
    self.assertIn("bert/encoder/layer_1/attention/self/query/kernel", names)
    self.assertIn("bert/embeddings/word_embeddings", names)

  def test_google_export_matches_transformers_with_the_tanh_gelu(self):
    self.assertIn("exported teacher to export/google_teacher/1", self.results["export_google"].stdout)
    inputs = hf_inputs(self.features)
    reference = reference_from_pt_state(self.google_state, 2, "gelu_new")(**inputs, training=False).logits
    erf_gelu = reference_from_pt_state(self.google_state, 2, "gelu")(**inputs, training=False).logits
    self.assertGreater(np.abs(reference - erf_gelu).max(), 1e-3)  # the comparison tells the two gelus apart
    teacher = SavedModelTeacher(self.path("export", "google_teacher"))
    self.assertEqual(teacher.labels, ["neg", "pos"])
    self.assertEqual(teacher.bert_config["hidden_act"], "gelu_new")
    self.assertAllClose(teacher(self.features)["logits"], reference, atol=1e-4)

  def test_google_checkpoint_directory_takes_the_latest_checkpoint(self):
    loaded = load_finetuned(FinetunedCheckpointConfig(
        init_checkpoint=self.path("google"), bert_config_file=self.path("google", "bert_config.json"),
        vocab_file=self.path("google", "vocab.txt"), labels=("neg", "pos"), max_seq_length=SEQ))
    self.assertEqual(loaded.source, f"google_checkpoint:{self.google_prefix}")

  # Errors.

  def test_cli_errors_are_one_line(self):
    self.assertCleanError("no_classifier", r".*has no classifier weights .* not a fine-tuned classifier")
    self.assertCleanError("label_count", r"the classifier of .* has 2 outputs but there are 3 labels")
    self.assertCleanError("no_vocab", r".*no_vocab has no vocab.txt; pass .* --vocab_file")
    self.assertCleanError("with_output_dir", r"--init_checkpoint exports .* pass one of them")
    self.assertCleanError("qa_named_classifier", r".* has question-answering weights \(qa_outputs\) but .* names "
                          r"architectures \['BertForSequenceClassification'\]; config and weights come from different")

  def test_library_errors(self):
    google = dict(init_checkpoint=self.google_prefix, bert_config_file=self.path("google", "bert_config.json"),
                  vocab_file=self.path("google", "vocab.txt"), labels=("neg", "pos"), max_seq_length=SEQ)
    pytorch_only = self.path("pytorch_only")
    os.makedirs(pytorch_only)
    shutil.copy(self.path("hf_pt", "config.json"), pytorch_only)
    with open(os.path.join(pytorch_only, "pytorch_model.bin"), "wb") as f:
      f.write(b"\x80\x02")
    cases = [
        ({"init_checkpoint": pytorch_only}, "pytorch_model.bin, a pickle that needs PyTorch"),
        ({"init_checkpoint": self.path("hf_h5"), "labels": ("a", "b", "c")}, "contradicts .*id2label"),
        ({"init_checkpoint": self.path("hf_h5"), "bert_config_file": "x.json"}, "--bert_config_file is for Google"),
        ({**google, "bert_config_file": None}, "records no bert_config; pass --bert_config_file"),
        ({**google, "vocab_file": None}, "records no vocab; pass --vocab_file"),
        ({**google, "labels": None}, "records no labels; pass --labels"),
        ({**google, "init_checkpoint": self.path("nothing")}, "neither a Hugging Face directory"),
        ({**google, "max_seq_length": 64}, "beyond the model's 32 position embeddings"),
    ]
    for fields, message in cases:
      with self.subTest(message=message), self.assertRaisesRegex(CheckpointError, message):
        load_finetuned(FinetunedCheckpointConfig(**{"max_seq_length": SEQ, **fields}))

  def test_config_with_fewer_layers_than_the_checkpoint_is_refused(self):
    short = self.path("short_config.json")
    with open(self.path("google", "bert_config.json"), encoding="utf-8") as f:
      config = {**json.load(f), "num_hidden_layers": 1}
    with open(short, "w", encoding="utf-8") as f:
      json.dump(config, f)
    with self.assertRaisesRegex(CheckpointError, r"encoder layers \[1\] beyond the config's num_hidden_layers=1"):
      load_finetuned(FinetunedCheckpointConfig(init_checkpoint=self.google_prefix, bert_config_file=short,
                                               vocab_file=self.path("google", "vocab.txt"), labels=("neg", "pos"),
                                               max_seq_length=SEQ))

  # End to end.

  def test_google_checkpoint_distils_into_a_student(self):
    result = self.results["distill"]
    self.assertEqual(result.returncode, 0, _describe(result))
    with open(self.path("runs", "student", "eval_results.json"), encoding="utf-8") as f:
      results = json.load(f)
    self.assertGreater(results["history"]["kd_loss"][0], 0.0)  # the teacher was queried
    self.assertBetween(results["test_accuracy"], 0.0, 1.0)
    with open(self.path("runs", "student", "config.json"), encoding="utf-8") as f:
      config = json.load(f)
    self.assertEqual(config["data"]["vocab_file"], "export/google_teacher/1/assets.extra/vocab.txt")

  def test_hugging_face_directory_distils_into_a_student(self):
    self.assertIn("exported teacher to export/teacher/1 (signatures: distill, serving_default, serving_text) "
                  "from hf_pt",
                  self.results["export_hf_pt"].stdout)
    result = self.results["distill_hf"]
    self.assertEqual(result.returncode, 0, _describe(result))
    student = RunDir(self.path("runs", "hf_student"))
    results = student.read_eval_results()
    self.assertGreater(results["history"]["kd_loss"][0], 0.0)
    self.assertBetween(results["test_accuracy"], 0.0, 1.0)
    self.assertEqual(student.labels, ["neg", "pos"])  # the Hugging Face config's id2label, in its order
    self.assertEqual(student.read_model_config()["num_hidden_layers"], 1)
    # The student started from teacher layer 2 of the Hugging Face weights: its untrained twin built the same way
    # has that layer's query kernel (PyTorch [out, in] transposed), so training moved it only by lr-sized steps.
    kernel, = [w for w in student.load_model().weights if "layer_0/query/kernel" in w.name]
    self.assertAllClose(kernel, self.pt_state["bert.encoder.layer.1.attention.self.query.weight"].T, atol=0.05)

  def test_hugging_face_qa_model_distils_on_squad(self):
    result = self.results["distill_hf_qa"]
    self.assertEqual(result.returncode, 0, _describe(result))
    student = RunDir(self.path("runs", "hf_qa_student"))
    results = student.read_eval_results()
    self.assertGreater(results["history"]["kd_loss"][0], 0.0)  # the teacher was queried
    self.assertBetween(results["dev_f1"], 0.0, 100.0)
    self.assertEqual(student.labels, ["start", "end"])
    self.assertEqual(student.read_model_config()["head"], "span")
    # The student started from the Hugging Face model's layer 2, as the classifier's does.
    kernel, = [w for w in student.load_model().weights if "layer_0/query/kernel" in w.name]
    qa_query = [w for w in self.qa_model.weights if "layer_._1/attention/self/query/kernel" in w.name][0]
    self.assertAllClose(kernel, qa_query, atol=0.05)


if __name__ == "__main__":
  tf.test.main()
