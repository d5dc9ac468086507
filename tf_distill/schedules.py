"""Training stages and schedules as Keras callbacks that set the `Distiller`'s non-trainable variables.

Stages (`--stages`, epochs per stage, run in order):
  joint         logits and intermediate terms together (the default when no stages are given)
  intermediate  TinyBERT's first stage: only the intermediate matches (logits_weight = 0)
  prediction    TinyBERT's second stage: only the logits terms (feature_weight = 0)
  progressive   MobileBERT's progressive knowledge transfer: the stage's epochs are split evenly over the student's
                layers, and in the k-th part only the matches at student layer <= k are active (weights of deeper
                matches are 0). Lower layers keep training (MobileBERT freezes them); this keeps one train function.
  qat           quantisation-aware distillation: the joint losses with int8 simulated in the student's forward pass
                (`tf_distill.quantization_aware`), so that its full-int8 TFLite file keeps the float accuracy. It
                must be the last stage; the run keeps its best student from the qat epochs (dev accuracy under the
                simulation), e.g. --stages=joint:3,qat:1.

Value schedules (`--temperature_schedule`, `--alpha_schedule`):
  constant      the flag's value throughout
  linear:END    from the flag's value to END, linearly in the training step
Per-example temperatures (TextBrewer's temperature schedulers; `temperature_fn`), with T0 = --temperature:
  flsw:BETA:GAMMA   T_b = T0 + beta * (mean(w) - w_b), w_b = (1 - cos(z_s_b, z_t_b))^gamma
  cwsm:BETA         T_b = T0 + beta * (mean(w) - w_b), w_b = 1 / (max_c softmax(z_s_b)_c + 1e-3)
"""

import math
from typing import Callable, Optional, Sequence, Tuple

import tf_distill  # noqa: F401
import tensorflow as tf
import tf_keras as keras

STAGES = ("joint", "intermediate", "prediction", "progressive", "qat")
QAT = "qat"


def parse_stages(spec: str) -> Tuple[Tuple[str, int], ...]:
  """"intermediate:2,prediction:3" -> (("intermediate", 2), ("prediction", 3)); "" -> ()."""
  stages = []
  for item in (i.strip() for i in spec.split(",")) if spec.strip() else ():
    name, _, epochs = item.partition(":")
    if name not in STAGES:
      raise ValueError(f"unknown stage {name!r} in --stages={spec!r}; use {list(STAGES)}")
    try:
      count = int(epochs)
    except ValueError:
      count = 0
    if count < 1:
      raise ValueError(f"stage {item!r} in --stages={spec!r} needs a number of epochs >= 1, as in {name}:2")
    stages.append((name, count))
  if any(name == QAT for name, _ in stages[:-1]):
    raise ValueError(f"--stages={spec!r}: {QAT} must be the last stage (it trains the weights the full-int8 export "
                     f"uses), e.g. joint:3,{QAT}:1")
  return tuple(stages)


def qat_start_epoch(stages: Sequence[Tuple[str, int]]) -> Optional[int]:
  """The 0-based epoch where the qat stage starts; None without one."""
  if not stages or stages[-1][0] != QAT:
    return None
  return sum(n for _, n in stages[:-1])


class StageSchedule(keras.callbacks.Callback):
  """Sets logits_weight, feature_weight and match_weights at the start of every epoch from `stages`, and switches
  the student's int8 simulation on for the qat stage."""

  def __init__(self, stages: Sequence[Tuple[str, int]]):
    super().__init__()
    self.stages = tuple(stages)
    self.epochs = sum(n for _, n in self.stages)

  def weights_at(self, epoch: int, matches) -> Tuple[float, float, Tuple[float, ...]]:
    """(logits_weight, feature_weight, match weights) for a 0-based epoch."""
    full = tuple(m.weight for m in matches)
    start = 0
    for name, count in self.stages:
      if epoch < start + count:
        if name == "intermediate":
          return 0.0, 1.0, full
        if name == "prediction":
          return 1.0, 0.0, full
        if name == "progressive":
          deepest = max((_student_depth(m.student_layer) for m in matches), default=0)
          active = math.floor((epoch - start) * max(deepest, 1) / count) + 1
          return 0.0, 1.0, tuple(m.weight if _student_depth(m.student_layer) <= active else 0.0 for m in matches)
        return 1.0, 1.0, full
      start += count
    return 1.0, 1.0, full

  def on_epoch_begin(self, epoch, logs=None):
    distiller = self.model
    logits_weight, feature_weight, weights = self.weights_at(epoch, distiller.matches)
    distiller.logits_weight.assign(logits_weight)
    distiller.feature_weight.assign(feature_weight)
    if weights:
      distiller.match_weights.assign(weights)
    qat_start = qat_start_epoch(self.stages)
    if qat_start is not None:
      distiller.simulate_int8(epoch >= qat_start)


def _student_depth(layer) -> int:
  return max(layer) if isinstance(layer, tuple) else layer


def parse_value_schedule(spec: str, flag: str) -> Optional[float]:
  """"constant" -> None; "linear:END" -> END."""
  if spec == "constant":
    return None
  name, _, end = spec.partition(":")
  try:
    if name == "linear":
      return float(end)
  except ValueError:
    pass
  raise ValueError(f"--{flag}={spec!r}: use constant or linear:END, e.g. linear:1.0")


class LinearSchedule(keras.callbacks.Callback):
  """Moves `getattr(model, attribute)` linearly from `start` to `end` over `total_steps` optimizer steps."""

  def __init__(self, attribute: str, start: float, end: float, total_steps: int):
    super().__init__()
    self.attribute, self.start, self.end, self.total_steps = attribute, float(start), float(end), max(total_steps, 1)

  def value_at(self, step: int) -> float:
    return self.start + (self.end - self.start) * min(step / self.total_steps, 1.0)

  def on_train_batch_begin(self, batch, logs=None):
    getattr(self.model, self.attribute).assign(self.value_at(int(self.model.optimizer.iterations)))


def flsw_temperature(beta: float, gamma: float) -> Callable:
  """TextBrewer's flsw: examples where student and teacher disagree more get a lower temperature."""
  def fn(student_logits, teacher_logits, base_temperature):
    v = tf.math.l2_normalize(student_logits, axis=-1, epsilon=1e-8)
    t = tf.math.l2_normalize(teacher_logits, axis=-1, epsilon=1e-8)
    w = tf.pow(1.0 - tf.reduce_sum(v * t, axis=-1), gamma)
    return base_temperature + (tf.reduce_mean(w) - w) * beta
  return fn


def cwsm_temperature(beta: float) -> Callable:
  """TextBrewer's cwsm: examples the student is less confident on get a lower temperature."""
  def fn(student_logits, teacher_logits, base_temperature):
    del teacher_logits
    w = 1.0 / (tf.reduce_max(tf.nn.softmax(student_logits, axis=-1), axis=-1) + 1e-3)
    return base_temperature + (tf.reduce_mean(w) - w) * beta
  return fn


def temperature_fn_from_spec(spec: str) -> Optional[Callable]:
  """None for constant/linear schedules; the per-example function for "flsw:BETA:GAMMA" or "cwsm:BETA"."""
  name, *args = spec.split(":")
  try:
    if name == "flsw" and len(args) == 2:
      return flsw_temperature(float(args[0]), float(args[1]))
    if name == "cwsm" and len(args) == 1:
      return cwsm_temperature(float(args[0]))
  except ValueError:
    pass
  if name in ("flsw", "cwsm"):
    raise ValueError(f"--temperature_schedule={spec!r}: use flsw:BETA:GAMMA or cwsm:BETA, e.g. flsw:1:1")
  return None


def schedule_callbacks(distill_config, stages: Sequence[Tuple[str, int]], total_steps: int) -> list:
  """The callbacks that move a run's weights between steps: its stages, and the linear temperature / alpha schedules
  of a `DistillConfig` (flsw / cwsm act inside the train step, as `temperature_fn_from_spec`)."""
  callbacks = [StageSchedule(stages)] if stages else []
  for attribute, spec, start in (("temperature", distill_config.temperature_schedule, distill_config.temperature),
                                 ("alpha", distill_config.alpha_schedule, distill_config.alpha)):
    if spec.startswith(("flsw", "cwsm")):
      continue
    end = parse_value_schedule(spec, f"{attribute}_schedule")
    if end is not None:
      callbacks.append(LinearSchedule(attribute, start, end, total_steps))
  return callbacks
