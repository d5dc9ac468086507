"""`FeatureLoss`, the feature-loss registry, and `register_feature_loss`, the decorator that fills it.

Each loss module (`hidden`, `attention`, `relations`) registers its losses on their definitions:

    @register_feature_loss("hidden_mse", outputs=("hidden_states",), needs_projection=True)
    def hidden_mse(teacher, student, mask=None):
      ...

`tf_distill.losses.features` imports every loss module, so look losses up through it (`features.feature_loss(name)`);
this module alone holds only the losses whose modules have been imported.
"""

import dataclasses
import inspect
from typing import Any, Callable, Mapping, Tuple, Union

import tf_distill  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf

from tf_distill.registry import Registry

LossFn = Callable[..., tf.Tensor]


@dataclasses.dataclass(frozen=True)
class FeatureLoss:
  """A registered feature loss and what it needs from the models.

  Attributes:
    fn: `(teacher, student, mask=None, **options) -> float32 scalar`.
    outputs: model output keys the loss reads at a matched layer (`tf_distill.bert.OUTPUT_KEYS`). With one key `fn`
      gets that tensor; with several (qkv_relation) it gets a tuple in this order.
    needs_projection: the loss compares teacher and student vectors unit by unit, so the student's width must equal the
      teacher's; when they differ the caller maps each student tensor through a `Projection(teacher_width)` first.
    num_layers: 1, or 2 for losses between two layers of each model (fsp): `fn` then gets `(first, second)` pairs and a
      match names two layers on each side.
    options: keyword options `fn` requires that only the caller knows (e.g. `num_heads` from the student's config).
  """
  fn: LossFn
  outputs: Tuple[str, ...]
  needs_projection: bool
  num_layers: int = 1
  options: Tuple[str, ...] = ()

  def __post_init__(self):
    name = getattr(self.fn, "__name__", repr(self.fn))
    if not self.outputs or not all(isinstance(key, str) for key in self.outputs):
      raise ValueError(f"{name}: outputs must be a non-empty tuple of model output keys, got {self.outputs!r}")
    if self.num_layers not in (1, 2):
      raise ValueError(f"{name}: num_layers must be 1 or 2, got {self.num_layers!r}")
    parameters = inspect.signature(self.fn).parameters
    missing = [option for option in self.options if option not in parameters]
    if missing:
      raise ValueError(f"{name}: options {missing} are not keyword parameters of the loss; it takes "
                       f"{list(parameters)}")

  @property
  def accepts_embeddings(self) -> bool:
    """Whether layer 0 (the embedding output) is valid: only for losses on hidden states."""
    return self.outputs == ("hidden_states",)

  def select(self, model_outputs: Mapping[str, Any], layer: Union[int, Tuple[int, int]]):
    """Picks this loss's input from a model's output dict at `layer` (1-based; 0 = embeddings).

    The student and every teacher source (online SavedModel or cache) give the same layout: `embeddings` a tensor, and
    each per-layer output a Python list over layers (0-based, so layer l is item l - 1), which for a cached teacher has
    None at the layers the cache does not hold. Returns a tensor, or a tuple for several outputs or two layers;
    ValueError when a selected layer is absent or None.
    """
    if self.num_layers == 2:
      first, second = layer
      return (self._select_one(model_outputs, first), self._select_one(model_outputs, second))
    return self._select_one(model_outputs, layer)

  def _select_one(self, model_outputs, layer):
    tensors = tuple(_layer_output(model_outputs, key, layer) for key in self.outputs)
    return tensors[0] if len(tensors) == 1 else tensors


def _layer_output(model_outputs: Mapping[str, Any], key: str, layer: int):
  if layer == 0:
    if key != "hidden_states":
      raise ValueError(f"layer 0 is the embedding output, which has no {key!r}; use layers >= 1 for attention losses")
    return model_outputs["embeddings"]
  if layer < 0:
    raise ValueError(f"layers are 1-based (0 = embeddings), got layer {layer}")
  per_layer = model_outputs[key]
  value = per_layer[layer - 1] if layer <= len(per_layer) else None
  if value is None:
    held = [i + 1 for i, x in enumerate(per_layer) if x is not None]
    raise ValueError(f"{key!r} has no layer {layer} (list item {layer - 1}); the outputs hold layers {held} "
                     "(1-based). A teacher cache serves only the layers it was written with")
  return value


FEATURE_LOSSES = Registry("feature loss")


def register_feature_loss(name: str, outputs: Tuple[str, ...], needs_projection: bool, num_layers: int = 1,
                          options: Tuple[str, ...] = ()) -> Callable[[LossFn], LossFn]:
  """Decorator registering a loss function in `FEATURE_LOSSES` as `FeatureLoss(fn, outputs, ...)`.

  The arguments are `FeatureLoss`'s fields. Returns the function unchanged; ValueError on a duplicate name or fields
  that do not fit the function (an option that is not one of its parameters).
  """
  def decorator(fn: LossFn) -> LossFn:
    entry = FeatureLoss(fn, tuple(outputs), needs_projection, num_layers=num_layers, options=tuple(options))
    FEATURE_LOSSES.register(name)(entry)
    return fn
  return decorator
