"""Already fine-tuned BERT classifiers, taggers and SQuAD models as tf_distill teachers, without training again.

    config = FinetunedCheckpointConfig(init_checkpoint="hf_classifier_dir", max_seq_length=128).validate()
    export_finetuned(config, "export", "teacher")   # export/teacher/<version>/, serving_default + distill

Two sources are read:

  Hugging Face directory (`save_pretrained`) of one of `ARCHITECTURES`, as config.json's `architectures` names it:
        BertForSequenceClassification  head "pooled"; `classifier` over the pooler; labels from `id2label`
        BertForTokenClassification     head "token" (a tagger); `classifier` over every position, no pooler; tags
                                       from `id2label`
        BertForQuestionAnswering       head "span" (extractive QA, task squad); `qa_outputs` ([2, hidden]: start
                                       and end logits of every position) becomes the span head's `classifier`, no
                                       pooler; labels ("start", "end") whatever `id2label` says (usually LABEL_0/1)
      The weights must agree: `qa_outputs` in a directory whose config.json names another architecture, or none in
      one that names BertForQuestionAnswering, is refused (config and weights of two models). With config.json,
      vocab.txt and the weights in one of
        model.safetensors  PyTorch's save_pretrained (keys `bert.embeddings...`, `classifier.weight` [labels, hidden])
                           or TensorFlow's with safe_serialization=True (metadata format "tf", TF variable names)
        tf_model.h5        TensorFlow's save_pretrained (Keras h5: `<layer>/<model name>/bert/...:0`)
      pytorch_model.bin is a pickle that needs PyTorch and is refused with the conversion to use instead.
  Google BERT checkpoint, as run_classifier.py writes it: `--init_checkpoint=model.ckpt-N` (or its directory),
      variables `bert/embeddings/...`, `bert/encoder/layer_N/...`, `bert/pooler/dense/...`, `output_weights`
      [labels, hidden] and `output_bias` [labels] (Adam slots and global_step are skipped); `--bert_config_file`,
      `--vocab_file` and `--labels`. Google's modeling.py computes gelu with the tanh approximation, so its
      "hidden_act": "gelu" becomes our "gelu_new".

Every source is turned into one state dict under Hugging Face's PyTorch names and layout (dense weights [out, in])
and assigned by `tf_distill.pretrained.assign_weights`, the mapping that loads the pretrained MiniLM weights.
"""

import dataclasses
import json
import os
import re
from typing import Dict, List, Optional, Tuple

import numpy as np

import tf_distill  # noqa: F401
import tensorflow as tf

from tf_distill.bert import BertClassifier, BertConfig
from tf_distill.configs import FinetunedCheckpointConfig
from tf_distill.export.serving import export_classifier
from tf_distill.pretrained import assign_weights
from tf_distill.tasks import TASK_TYPES, task_type_for_head, task_type_of
from tf_distill.tasks.question_answering import LABELS as SPAN_LABELS

State = Dict[str, np.ndarray]

# TF variable name endings -> (Hugging Face name ending, transpose): Keras Dense kernels are [in, out].
_TF_SUFFIXES = {"kernel": ("weight", True), "bias": ("bias", False), "gamma": ("weight", False),
                "beta": ("bias", False), "embeddings": ("weight", False), "weight": ("weight", False)}
_GOOGLE_TABLES = ("word_embeddings", "position_embeddings", "token_type_embeddings")
_GENERIC_LABEL = re.compile(r"LABEL_\d+")
# The Hugging Face architectures read (config.json `architectures`) -> our head (`tf_distill.bert.HEADS`).
ARCHITECTURES = {"BertForSequenceClassification": "pooled", "BertForTokenClassification": "token",
                 "BertForQuestionAnswering": "span"}
_READABLE = ", ".join(ARCHITECTURES)
# The heads' output layers as transformers names them (TF layer and PyTorch module alike).
_HEAD_LAYERS = ("classifier", "qa_outputs")


class CheckpointError(ValueError):
  """The fine-tuned checkpoint cannot be read as a BERT classifier; the message names the problem and the fix."""


@dataclasses.dataclass(frozen=True)
class FinetunedClassifier:
  """A fine-tuned classifier read into a `BertClassifier`, with what its export records."""
  model: BertClassifier
  labels: List[str]
  vocab_file: str
  do_lower_case: bool
  source: str   # "hugging_face:<weights file>" or "google_checkpoint:<prefix>"


def tf_name_to_hf(name: str) -> Optional[Tuple[str, bool]]:
  """A TF variable name -> (Hugging Face key without `bert.`, transpose), or None for a variable that is no model
  weight (optimizer slots, global_step, pre-training heads).

  "bert/encoder/layer_3/attention/self/query/kernel" (Google) and "bert/encoder/layer_._3/attention/self/query/
  kernel:0" (transformers' TF BERT) -> ("encoder.layer.3.attention.self.query.weight", True);
  "output_weights" / "output_bias" (run_classifier.py's classifier, already [labels, hidden]) -> classifier.*;
  "qa_outputs/kernel:0" (transformers' TF BertForQuestionAnswering) -> ("qa_outputs.weight", True). A leading model
  name ("tf_bert_for_question_answering/qa_outputs/kernel:0", as the variable itself is named) is dropped.
  """
  name = name.split(":")[0]
  if name in ("output_weights", "output_bias"):
    return ("classifier.weight" if name == "output_weights" else "classifier.bias"), False
  parts = name.split("/")
  if re.fullmatch(r"tf_bert_for_\w+", parts[0]):
    parts = parts[1:]
  if parts[0] not in ("bert",) + _HEAD_LAYERS:
    return None
  if parts[-1] in _GOOGLE_TABLES and parts[-2] == "embeddings":
    parts.append("embeddings")  # Google's tables are variables named after the table itself
  if parts[-1] not in _TF_SUFFIXES:
    return None  # e.g. .../kernel/adam_m
  suffix, transpose = _TF_SUFFIXES[parts[-1]]
  middle = []
  for part in parts[1 if parts[0] == "bert" else 0:-1]:
    match = re.fullmatch(r"layer_(?:\._)?(\d+)", part)
    middle += ["layer", match.group(1)] if match else [part]
  return ".".join(middle + [suffix]), transpose


def _from_tf_names(items) -> State:
  state = {}
  for name, value in items:
    mapped = tf_name_to_hf(name)
    if mapped is not None:
      key, transpose = mapped
      state[key] = np.asarray(value).T if transpose else np.asarray(value)
  return state


def _read_hf_weights(path: str, model_class: str) -> Tuple[State, str]:
  """The weights of a Hugging Face directory under HF names, and the file they came from; `model_class` (its
  config.json's architecture) names the class to convert a pytorch_model.bin with."""
  safetensors_file, h5_file = os.path.join(path, "model.safetensors"), os.path.join(path, "tf_model.h5")
  if os.path.isfile(safetensors_file):
    from safetensors import safe_open  # pylint: disable=import-outside-toplevel
    with safe_open(safetensors_file, "np") as f:
      tf_format = (f.metadata() or {}).get("format") == "tf"
      tensors = [(key, f.get_tensor(key)) for key in f.keys()]
    if tf_format:
      return _from_tf_names(tensors), safetensors_file
    return {k[len("bert."):] if k.startswith("bert.") else k: v for k, v in tensors}, safetensors_file
  if os.path.isfile(h5_file):
    import h5py  # pylint: disable=import-outside-toplevel
    tensors = []
    with h5py.File(h5_file, "r") as f:
      # Keras h5 weights: <layer name>/<variable name>, the variable name starting with the model's name.
      f.visititems(lambda key, item: tensors.append(("/".join(key.split("/")[2:]), item[()]))
                   if isinstance(item, h5py.Dataset) else None)
    return _from_tf_names(tensors), h5_file
  found = sorted(os.listdir(path))
  if "pytorch_model.bin" in found:
    raise CheckpointError(f"{path} holds its weights only as pytorch_model.bin, a pickle that needs PyTorch (not "
                          "used by tf_distill); save it as safetensors where PyTorch is installed: "
                          f"{model_class}.from_pretrained(DIR).save_pretrained(DIR, safe_serialization=True), "
                          "which writes model.safetensors")
  if any(name.endswith(".index.json") for name in found):
    raise CheckpointError(f"{path} holds a sharded checkpoint ({found}); save it as one file with "
                          "save_pretrained(DIR, max_shard_size='10GB')")
  raise CheckpointError(f"{path} has no model.safetensors or tf_model.h5 (found {found}); pass the directory that "
                        f"save_pretrained of a {_READABLE} wrote")


def _hf_head(hf_config: Dict, state: State, path: str, weights_file: str) -> str:
  """The head of the architecture config.json names (`ARCHITECTURES`; "pooled" when it names none of them, as
  before heads existed), checked against the weights: a question-answering model alone has `qa_outputs`. A config
  without `architectures` takes the head the weights say."""
  named = hf_config.get("architectures") or []
  has_qa_outputs = "qa_outputs.weight" in state
  if not named:
    return "span" if has_qa_outputs else "pooled"
  head = next((ARCHITECTURES[name] for name in named if name in ARCHITECTURES), "pooled")
  if has_qa_outputs and head != "span":
    raise CheckpointError(f"{weights_file} has question-answering weights (qa_outputs) but {path}/config.json names "
                          f"architectures {named}; config and weights come from different models: pass the directory "
                          "BertForQuestionAnswering.save_pretrained wrote")
  if head == "span" and not has_qa_outputs:
    heads = sorted({key.split(".")[0] for key in state if key.split(".")[0] in _HEAD_LAYERS})
    raise CheckpointError(f"{path}/config.json names BertForQuestionAnswering but {weights_file} has no qa_outputs "
                          f"weights (it has {heads or 'no head'}); config and weights come from different models: pass "
                          "the directory save_pretrained wrote")
  return head


def _qa_outputs_as_classifier(state: State, weights_file: str) -> State:
  """The state with BertForQuestionAnswering's `qa_outputs.*` ([2, hidden], [2]) renamed to the span head's
  `classifier.*`: the same Dense(2) over every position, row 0 the start and row 1 the end logits."""
  rows = state["qa_outputs.weight"].shape[0]
  if rows != len(SPAN_LABELS):
    raise CheckpointError(f"the qa_outputs of {weights_file} has {rows} outputs; a question-answering head has 2 "
                          "(the start and the end logit of every position)")
  return {("classifier." + k[len("qa_outputs."):] if k.startswith("qa_outputs.") else k): v for k, v in state.items()}


def _span_labels(labels: Optional[Tuple[str, ...]]) -> List[str]:
  """("start", "end"), the rows of the span logits, whatever config.json's id2label says (HF's QA configs have none
  or LABEL_0, LABEL_1); a --labels that differs is refused."""
  if labels is not None and tuple(labels) != SPAN_LABELS:
    raise CheckpointError(f"--labels={','.join(labels)} does not fit a question-answering model, whose two outputs "
                          f"are the {','.join(SPAN_LABELS)} logits of every position; drop --labels")
  return list(SPAN_LABELS)


def _hf_labels(hf_config: Dict, path: str, labels: Optional[Tuple[str, ...]]) -> List[str]:
  id2label = hf_config.get("id2label") or {}
  names = [id2label[k] for k in sorted(id2label, key=int)]
  if labels is None:
    if not names:
      raise CheckpointError(f"{path}/config.json has no id2label; pass the label names in id order with --labels")
    return names
  if names and len(names) != len(labels):
    raise CheckpointError(f"--labels names {len(labels)} labels {list(labels)} but {path}/config.json's id2label "
                          f"has {len(names)}: {names}")
  if names and not all(_GENERIC_LABEL.fullmatch(n) for n in names) and list(labels) != names:
    raise CheckpointError(f"--labels={','.join(labels)} contradicts {path}/config.json's id2label {names}; drop "
                          "--labels to use the checkpoint's names")
  return list(labels)


def _single_file(flag_value: Optional[str], default: str, what: str) -> str:
  """`flag_value` when given, else `default`; refuses a flag that contradicts the checkpoint's own file."""
  if flag_value and os.path.isfile(default) and not _same_content(flag_value, default):
    raise CheckpointError(f"--{what}={flag_value} differs from {default}, which came with the checkpoint; drop "
                          f"--{what}")
  return flag_value or default


def _same_content(a: str, b: str) -> bool:
  if not os.path.isfile(a):
    return False
  with open(a, "rb") as fa, open(b, "rb") as fb:
    return fa.read() == fb.read()


def _read_hugging_face(config: FinetunedCheckpointConfig):
  path = config.init_checkpoint
  if config.bert_config_file:
    raise CheckpointError(f"{path} is a Hugging Face directory with its own config.json; --bert_config_file is for "
                          "Google BERT checkpoints: drop it")
  with open(os.path.join(path, "config.json"), encoding="utf-8") as f:
    hf_config = json.load(f)
  if hf_config.get("model_type", "bert") != "bert":
    raise CheckpointError(f"{path}/config.json describes a {hf_config['model_type']!r} model; only BERT "
                          f"({_READABLE}) checkpoints can be read")
  if hf_config.get("position_embedding_type", "absolute") != "absolute":
    raise CheckpointError(f"{path}/config.json has position_embedding_type "
                          f"{hf_config['position_embedding_type']!r}; only 'absolute' is supported")
  if hf_config.get("problem_type") not in (None, "single_label_classification"):
    raise CheckpointError(f"{path} is a {hf_config['problem_type']} model; distillation needs a single-label "
                          "(softmax) classifier")
  state, weights_file = _read_hf_weights(path, (hf_config.get("architectures") or
                                                 ["BertForSequenceClassification"])[0])
  head = _hf_head(hf_config, state, path, weights_file)
  if head == "span":
    state = _qa_outputs_as_classifier(state, weights_file)
  _require_classifier(state, weights_file)
  labels = _span_labels(config.labels) if head == "span" else _hf_labels(hf_config, path, config.labels)
  do_lower_case = _tokenizer_lower_case(path, config.do_lower_case)
  vocab_file = _single_file(config.vocab_file, os.path.join(path, "vocab.txt"), "vocab_file")
  if not config.vocab_file and not os.path.isfile(vocab_file):
    raise CheckpointError(f"{path} has no vocab.txt; pass the vocab the classifier was trained with as --vocab_file")
  return {**hf_config, "head": head}, state, labels, vocab_file, do_lower_case, f"hugging_face:{weights_file}"


def _tokenizer_lower_case(path: str, flag_value: Optional[bool]) -> bool:
  tokenizer_config = os.path.join(path, "tokenizer_config.json")
  saved = None
  if os.path.isfile(tokenizer_config):
    with open(tokenizer_config, encoding="utf-8") as f:
      saved = json.load(f).get("do_lower_case")
  if flag_value is not None and saved is not None and flag_value != saved:
    raise CheckpointError(f"--do_lower_case={flag_value} contradicts {tokenizer_config} (do_lower_case={saved}); "
                          "drop --do_lower_case")
  return flag_value if flag_value is not None else (saved if saved is not None else True)


def _google_prefix(init_checkpoint: str) -> str:
  prefix = init_checkpoint[:-len(".index")] if init_checkpoint.endswith(".index") else init_checkpoint
  if os.path.isdir(prefix):
    prefix = tf.train.latest_checkpoint(prefix) or prefix
  if not os.path.isfile(prefix + ".index"):
    where = os.path.dirname(prefix) or "."
    found = sorted(os.listdir(where))[:10] if os.path.isdir(where) else []
    raise CheckpointError(f"--init_checkpoint={init_checkpoint} is neither a Hugging Face directory (no config.json) "
                          f"nor a TF checkpoint (no {prefix}.index; {where} has {found}); pass the directory "
                          "save_pretrained wrote, or run_classifier.py's model.ckpt-N prefix")
  return prefix


def _read_google(config: FinetunedCheckpointConfig):
  prefix = _google_prefix(config.init_checkpoint)
  for flag, value in (("bert_config_file", config.bert_config_file), ("vocab_file", config.vocab_file),
                      ("labels", config.labels)):
    if not value:
      raise CheckpointError(f"{prefix} is a Google BERT checkpoint, which records no {flag.replace('_file', '')}; "
                            f"pass --{flag} (as run_classifier.py was given it)")
  with open(_existing(config.bert_config_file, "bert_config_file"), encoding="utf-8") as f:
    bert_config = json.load(f)
  if bert_config.get("hidden_act", "gelu") == "gelu":
    bert_config["hidden_act"] = "gelu_new"  # modeling.py's gelu is the tanh approximation
  reader = tf.train.load_checkpoint(prefix)
  state = _from_tf_names((name, reader.get_tensor(name)) for name in reader.get_variable_to_shape_map())
  _require_classifier(state, prefix)
  do_lower_case = True if config.do_lower_case is None else config.do_lower_case
  return bert_config, state, list(config.labels), config.vocab_file, do_lower_case, f"google_checkpoint:{prefix}"


def _existing(path: str, flag: str) -> str:
  if not os.path.isfile(path):
    raise CheckpointError(f"--{flag}={path} does not exist")
  return path


def _require_classifier(state: State, source: str) -> None:
  if "classifier.weight" not in state or "classifier.bias" not in state:
    raise CheckpointError(f"{source} has no classifier weights (classifier.* / output_weights, output_bias): it is "
                          "a pre-trained encoder, not a fine-tuned classifier; fine-tune it first with train_teacher")


def _check_state(state: State, source: str, num_layers: int, labels: List[str]) -> None:
  rows = state["classifier.weight"].shape[0]
  if rows != len(labels):
    raise CheckpointError(f"the classifier of {source} has {rows} outputs but there are {len(labels)} labels "
                          f"{labels}; pass one label per output, in id order (--labels)")
  extra = sorted({int(k.split(".")[2]) for k in state if k.startswith("encoder.layer.")} - set(range(num_layers)))
  if extra:
    raise CheckpointError(f"{source} has encoder layers {extra} beyond the config's num_hidden_layers={num_layers}; "
                          "the config does not match the checkpoint")


def _check_vocab(vocab_file: str, vocab_size: int, source: str) -> None:
  if not os.path.isfile(vocab_file):
    raise CheckpointError(f"vocab file {vocab_file} does not exist; pass the vocab.txt the classifier was trained "
                          "with as --vocab_file")
  with open(vocab_file, encoding="utf-8") as f:
    tokens = sum(1 for line in f if line.strip())
  if tokens > vocab_size:
    raise CheckpointError(f"{vocab_file} has {tokens} tokens but {source} embeds only {vocab_size}; pass the vocab "
                          "the classifier was trained with as --vocab_file")


def load_finetuned(config: FinetunedCheckpointConfig) -> FinetunedClassifier:
  """Reads the fine-tuned classifier `config` names (module docstring) into a `BertClassifier`."""
  config = config.validate()
  if os.path.isfile(os.path.join(config.init_checkpoint, "config.json")):
    model_config, state, labels, vocab_file, do_lower_case, source = _read_hugging_face(config)
    config_name = os.path.join(config.init_checkpoint, "config.json")
  else:
    model_config, state, labels, vocab_file, do_lower_case, source = _read_google(config)
    config_name = config.bert_config_file
  bert_config = BertConfig.from_dict({**model_config, "model_type": "bert", "num_labels": len(labels)})
  if config.max_seq_length > bert_config.max_position_embeddings:
    raise CheckpointError(f"max_seq_length={config.max_seq_length} is beyond the model's "
                          f"{bert_config.max_position_embeddings} position embeddings; use "
                          f"--max_seq_length<={bert_config.max_position_embeddings}")
  _check_state(state, source, bert_config.num_hidden_layers, labels)
  _check_vocab(vocab_file, bert_config.vocab_size, source)
  model = BertClassifier(bert_config).build_weights()
  assign_weights(model, state, source, config_name, with_classifier=True)
  return FinetunedClassifier(model, labels, vocab_file, do_lower_case, source)


def _task_name(config: FinetunedCheckpointConfig, head: str) -> Optional[str]:
  """The task_name the export records, as a train_teacher run of the model's task type would: `--task_name`, refused
  when it is a task of another type (--task_name=wnut17 for a question-answering model); without it, the task when
  the head's type has only one (squad for BertForQuestionAnswering), else None."""
  own = task_type_for_head(head)
  if config.task_name is None:
    return own.task_names[0] if len(own.task_names) == 1 else None
  try:
    other = task_type_of(config.task_name)
  except LookupError:
    return config.task_name  # a task of the user's own, recorded as given
  if other is not own:
    kind = {TASK_TYPES.get(name): name for name in TASK_TYPES.names()}
    raise CheckpointError(f"--task_name={config.task_name} is a {kind[other]} task but {config.init_checkpoint} is a "
                          f"{kind[own]} model (head {head!r}, tasks {list(own.task_names)}); pass one of those or "
                          "drop --task_name")
  return config.task_name


def export_finetuned(config: FinetunedCheckpointConfig, export_dir: str, model_name: str,
                     version: Optional[int] = None) -> str:
  """Exports the fine-tuned model as a teacher, `<export_dir>/<model_name>/<version>/` with the signatures and
  metadata that a train_teacher run's export of its task type has (serving_default, distill, and serving_text where
  the type has one: not for question answering); returns the path."""
  loaded = load_finetuned(config)
  head = loaded.model.config.head
  if head == "span" and config.text_pairs:
    raise CheckpointError(f"--text_pairs is for sentence-pair classifiers; {config.init_checkpoint} is a "
                          "question-answering model (question and context windows, no serving_text): drop --text_pairs")
  metadata = {"labels": loaded.labels, "max_seq_length": config.max_seq_length,
              "task_name": _task_name(config, head), "do_lower_case": loaded.do_lower_case,
              "text_pairs": config.text_pairs, "source": loaded.source}
  return export_classifier(loaded.model, export_dir, model_name, metadata, loaded.vocab_file,
                           with_distill_signature=True, version=version)
