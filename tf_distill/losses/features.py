"""Intermediate-layer distillation losses: hidden states, attention maps and self-attention relations.

Every loss is a plain function `(teacher, student, mask=None, **options) -> float32 scalar`, differentiable in
`student`, usable inside `tf.function` with a dynamic batch size and sequence length. `FEATURE_LOSSES` maps each name to
a `FeatureLoss`, which also says which model outputs the loss reads, so the distiller asks the teacher only for those.
Each loss is registered on its definition with `@register_feature_loss(name, outputs=..., needs_projection=...)`.

This module is the public entry point: it imports every loss module, so the registry is complete whenever it is
imported, and re-exports their names. The losses live by what they read:

  `hidden`:     hidden_mse, pkd_cls, cosine, mobilebert_fmt, fsp, mmd
  `attention`:  attention_mse_scores, attention_mse_probs, attention_kl
  `relations`:  value_relation, qkv_relation
  `base`:       FeatureLoss, FEATURE_LOSSES, register_feature_loss
  `projection`: Projection  (`masking` holds the masked reductions the losses share)

Shapes, per matched layer, as returned by `tf_distill.bert` and every teacher source, whose per-layer outputs are lists
over 0-based layers (teacher and student may differ in width and head count):

  hidden:  float32 [batch, seq, hidden]          (`hidden_states[l - 1]`, or `embeddings` for layer 0)
  scores:  float32 [batch, heads, seq, seq]      (`attention_scores`: q.k / sqrt(d_head), before the mask)
  probs:   float32 [batch, heads, seq, seq]      (`attention_probs`: softmax over the masked scores)
  q, k, v: float32 [batch, seq, hidden]          (`attention_queries/keys/values`: projections, heads concatenated)
  mask:    int32 or float [batch, seq]           (`input_mask`: 1 for real tokens, 0 for padding; None = all real)

Notation: m_bi is the mask of token i in example b, n = sum_bi m_bi the number of real tokens in the batch. "Mean over
real tokens" is one mean over all real tokens of the batch (token-weighted, as TinyBERT and TextBrewer compute it), so
padding never counts, in a sum or in a denominator. Padded keys are removed from every softmax (their logit is set to
-1e9 before it, so they get probability exactly 0), and padded query rows are left out of every mean.
"""

from typing import Callable

import tf_distill  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf

from tf_distill.losses.attention import attention_kl, attention_mse_probs, attention_mse_scores
from tf_distill.losses.base import FEATURE_LOSSES, FeatureLoss, register_feature_loss
from tf_distill.losses.hidden import cosine, fsp, hidden_mse, mmd, mobilebert_fmt, pkd_cls
from tf_distill.losses.projection import Projection
from tf_distill.losses.relations import qkv_relation, value_relation

__all__ = [
    "FEATURE_LOSSES", "FeatureLoss", "Projection", "feature_loss", "feature_loss_fn", "register_feature_loss",
    "attention_kl", "attention_mse_probs", "attention_mse_scores", "cosine", "fsp", "hidden_mse", "mmd",
    "mobilebert_fmt", "pkd_cls", "qkv_relation", "value_relation",
]


def feature_loss(name: str) -> FeatureLoss:
  """The registry entry for `name`; LookupError listing the known names on a miss."""
  return FEATURE_LOSSES.get(name)


def feature_loss_fn(name: str) -> Callable[..., tf.Tensor]:
  """The loss function registered as `name`; LookupError listing the known names on a miss."""
  return FEATURE_LOSSES.get(name).fn
