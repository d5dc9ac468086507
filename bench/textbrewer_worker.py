"""The TextBrewer (PyTorch) side of bench/textbrewer_compare.py: a child process that builds TextBrewer
`GeneralDistiller`s and times their training steps on request.

Run by textbrewer_compare.py with the Python of the TextBrewer environment (bench/requirements-textbrewer.txt), never
imported by tf_distill. It reads one JSON request per line on stdin and answers one JSON line on its original stdout
(everything the libraries print goes to stderr):

    {"cmd": "info"}                                        -> {"torch": ..., "textbrewer": ..., "threads": ...}
    {"cmd": "build", "name": N, "model": {...}, "batch": {...}, "labels": [...], "frozen": B, "hidden_mse": B,
     "warmup": W}                                          -> {"first": seconds of the first W steps}
    {"cmd": "time", "name": N, "steps": K}                 -> {"times": [K step times in seconds]}
    {"cmd": "quit"}

Models: transformers' PyTorch BertForSequenceClassification, random init (no download), teacher in eval mode under
torch.no_grad (TextBrewer does both), student in train mode. Loss, as tf_distill's Distiller with alpha = 0.5:
0.5 * hard-label CE + 0.5 * KD CE at temperature T (`kd_loss_type="ce"`), plus with `hidden_mse` one
`hidden_mse` intermediate match (student layer S, teacher layer T, weight 1, masked by the attention mask).
Optimizer: torch.optim.AdamW (lr 1e-4, weight decay 0.01 except biases and LayerNorm, eps 1e-6) with transformers'
linear warm-up schedule, BERT's recipe as in TextBrewer's examples.

Steps are driven by TextBrewer's own loop, `GeneralDistiller.train(optimizer, batches, num_steps=K + 1)`: its
`batch_postprocessor` hook is called at the start of every step, so the K intervals between K + 1 consecutive calls
are the times of K whole steps (teacher forward, student forward, losses, backward, optimizer and scheduler step,
zero_grad). The extra last step of each call, which TextBrewer ends by saving a checkpoint, is not timed.
"""

import json
import os
import shutil
import sys
import tempfile
import time


def _protocol_stream():
  """The original stdout for answers; fd 1 then points at stderr, so library prints cannot corrupt the protocol."""
  out = os.fdopen(os.dup(1), "w", buffering=1)
  os.dup2(2, 1)
  return out


ANSWERS = _protocol_stream()

# pylint: disable=wrong-import-position
import torch  # noqa: E402
import textbrewer  # noqa: E402
import transformers  # noqa: E402
from textbrewer import DistillationConfig, GeneralDistiller, TrainingConfig  # noqa: E402


class Worker:
  """Holds one teacher per model spec and one (distiller, optimizer, batch) per built configuration."""

  def __init__(self, threads: int):
    torch.set_num_threads(threads)
    self.root = tempfile.mkdtemp(prefix="textbrewer_bench_")
    self.teachers = {}
    self.runs = {}

  def info(self, _request):
    return {"torch": torch.__version__, "textbrewer": textbrewer.__version__, "transformers": transformers.__version__,
            "threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads(),
            "attention": self._teacher(_request["model"])._config_attn, "mkldnn": torch.backends.mkldnn.is_available()}

  def _teacher(self, spec):
    key = json.dumps(spec, sort_keys=True)
    if key not in self.teachers:
      torch.manual_seed(0)
      teacher = transformers.BertForSequenceClassification(_bert_config(spec, spec["teacher_layers"])).eval()
      teacher._config_attn = teacher.config._attn_implementation  # pylint: disable=protected-access
      self.teachers[key] = teacher
    return self.teachers[key]

  def build(self, request):
    spec = request["model"]
    teacher = self._teacher(spec)
    torch.manual_seed(1)
    student = transformers.BertForSequenceClassification(_bert_config(spec, spec["student_layers"]))
    if request["frozen"]:
      student.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    named = [(n, p) for n, p in student.named_parameters() if p.requires_grad]
    no_decay = ("bias", "LayerNorm.weight")
    optimizer = torch.optim.AdamW(
        [{"params": [p for n, p in named if not any(x in n for x in no_decay)], "weight_decay": 0.01},
         {"params": [p for n, p in named if any(x in n for x in no_decay)], "weight_decay": 0.0}],
        lr=1e-4, eps=1e-6)
    matches = []
    if request["hidden_mse"]:
      matches = [{"layer_T": spec["teacher_layer"], "layer_S": spec["student_layer"], "feature": "hidden",
                  "loss": "hidden_mse", "weight": 1}]
    distill_config = DistillationConfig(temperature=spec["temperature"], kd_loss_type="ce",
                                        kd_loss_weight=spec["alpha"], hard_label_weight=1.0 - spec["alpha"],
                                        intermediate_matches=matches)
    output_dir = os.path.join(self.root, request["name"])
    os.makedirs(output_dir, exist_ok=True)
    train_config = TrainingConfig(device="cpu", output_dir=output_dir, ckpt_steps=10**9)
    distiller = GeneralDistiller(train_config, distill_config, teacher, student, _adaptor, _adaptor)
    batch = {k: torch.tensor(v, dtype=torch.long) for k, v in request["batch"].items()}
    batch["labels"] = torch.tensor(request["labels"], dtype=torch.long)
    self.runs[request["name"]] = (distiller, optimizer, batch, bool(request["hidden_mse"]))
    start = time.perf_counter()
    self._train(request["name"], max(int(request["warmup"]), 1))
    return {"first": time.perf_counter() - start}

  def time(self, request):
    stamps = self._train(request["name"], int(request["steps"]) + 1)
    return {"times": [b - a for a, b in zip(stamps, stamps[1:])]}

  def _train(self, name, steps):
    distiller, optimizer, batch, hidden = self.runs[name]
    stamps = []

    def stamp(b):
      stamps.append(time.perf_counter())
      return b

    extra = {"output_hidden_states": True} if hidden else {}
    distiller.train(optimizer, [batch], num_steps=steps, batch_postprocessor=stamp,
                    scheduler_class=transformers.get_linear_schedule_with_warmup,
                    scheduler_args={"num_warmup_steps": 1000, "num_training_steps": 10000}, **extra)
    return stamps


def _bert_config(spec, layers):
  return transformers.BertConfig(vocab_size=spec["vocab_size"], hidden_size=spec["hidden_size"],
                                 num_hidden_layers=layers, num_attention_heads=spec["num_heads"],
                                 intermediate_size=spec["intermediate_size"], max_position_embeddings=512,
                                 num_labels=spec["num_labels"])


def _adaptor(batch, outputs):
  """TextBrewer adaptor: logits, the model's own hard-label loss, hidden states (when computed) and the mask."""
  result = {"logits": outputs.logits, "losses": outputs.loss, "inputs_mask": batch["attention_mask"]}
  if outputs.hidden_states is not None:
    result["hidden"] = outputs.hidden_states
  return result


def main():
  worker = Worker(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
  for line in sys.stdin:
    request = json.loads(line)
    if request["cmd"] == "quit":
      shutil.rmtree(worker.root, ignore_errors=True)
      break
    try:
      answer = getattr(worker, request["cmd"])(request)
    except Exception as e:  # pylint: disable=broad-except  (reported to the driver, which stops with it)
      answer = {"error": f"{type(e).__name__}: {e}"}
    ANSWERS.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
  main()
