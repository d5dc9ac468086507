"""`Distiller`: the Keras model whose `train_step` queries the teacher online and trains the student.

    L = logits_weight * [(1 - alpha) * CE(y, softmax(z_s), m) + alpha * KD(z_t, z_s, T, m)]
        + feature_weight * sum_i w_i * loss_i(teacher layer t_i, P_i(student layer s_i), input_mask)

The logits terms (`tf_distill.losses.logits`) are means over positions p, sum_p m_p l_p / sum_p m_p, and the rank of
the labels says what a position is, with no task switch anywhere:
    labels [batch],      logits [batch, num_labels]:     one position per example, m all ones (a classifier);
    labels [batch, seq], logits [batch, seq, num_tags]:  one per token, m = input_mask, so padding never counts.
    labels [batch, 2],   logits [batch, 2, seq]:         a start and an end position per example (extractive QA,
                                                         the "span" head): softmax over the sequence, m all ones.
Rank-2 labels are per token or span positions: the student's head says which (`tf_distill.bert.LogitsLayout`, its
`sequence_axis` 1 or 2; `self.logits_layout`), for the mask, the label cut and padding predictions back.
(`tf_distill.losses.logits.position_mask`.) In the span layout the classes of the softmax are the sequence positions;
the head itself gives padding positions `tf_distill.bert.MASKED_LOGIT`, so no term puts probability on them.
Positions with label -1 (unlabeled transfer-set text, `tf_distill.data.unlabeled`; a tagger's [CLS], [SEP] and
later word pieces) take part in every term but CE, where they count 0 (`tf_distill.losses.logits.hard_cross_entropy`);
each term is a mean over all the batch's positions. Features are cut to the batch's longest real sequence
(`trim_padding`), per-token labels with them (`trim_labels`).

The second line is the intermediate-layer distillation (TinyBERT, BERT-PKD, DistilBERT, MobileBERT, MiniLM): one term
per `tf_distill.layer_map.Match`, with a learned `Projection` P_i when a loss compares hidden vectors of different
widths (owned by the distiller: checkpointed with the student for resume, never exported with it).
`alpha`, `temperature`, `logits_weight` and `feature_weight` are non-trainable variables, so schedules and training
stages (`tf_distill.schedules`) change them between steps without retracing.

KD is a registered logits loss (`tf_distill.losses.logits.KD_LOSSES`; "ce" and "kl" include the T^2 factor). With
`alpha == 0` and no teacher the same loop fine-tunes a teacher or trains the no-distillation baseline, so every model
in a report is trained by one piece of code. The teacher is any `tf_distill.teacher.TeacherSource` (the online
SavedModel, the cache, ...): `teacher_outputs_needed` decides which outputs a run reads, and `train_step` asks the
source for exactly those, once per batch, outside the gradient tape; only `student.trainable_variables` are updated.
"""

from typing import Callable, Dict, Optional, Sequence, Tuple

import tf_distill  # noqa: F401
import tensorflow as tf
import tf_keras as keras

from tf_distill import quantization_aware
from tf_distill.bert import LogitsLayout, logits_layout
from tf_distill.data.tokenization import FEATURE_KEYS
from tf_distill.layer_map import Match, format_matches, required_outputs
from tf_distill.losses.features import Projection, feature_loss
from tf_distill.losses.logits import hard_cross_entropy, kd_loss_fn, position_mask, probability_shift
from tf_distill.students import student_type
from tf_distill.teacher import INDEX_KEY, TeacherSource


def teacher_outputs_needed(alpha: float, matches: Sequence[Match]) -> Tuple[str, ...]:
  """The teacher outputs a run reads: the logits when the distillation term has weight alpha > 0, plus what the
  intermediate matches compare. The one place this is decided (`DistillConfig.validate` refuses schedules and
  options that would need the logits of a run with alpha = 0)."""
  needed = set(required_outputs(matches, "teacher"))
  if alpha > 0:
    needed.add("logits")
  return tuple(sorted(needed))


def trim_padding(features):
  """Cuts the [batch, seq] model inputs to the longest real sequence in the batch (dynamic padding).

  Padding positions are masked out of attention, so logits do not change; compute drops with the padding. Other
  columns (such as `example_index`) are left out of the result.
  """
  length = tf.reduce_max(tf.reduce_sum(tf.cast(features["input_mask"], tf.int32), axis=1))
  length = tf.maximum(length, 1)
  return {k: features[k][:, :length] for k in FEATURE_KEYS}


def trim_labels(labels, inputs, sequence_axis=1):
  """The labels that go with `inputs = trim_padding(features)`: labels [batch] as they are, per-token labels
  [batch, seq] (`sequence_axis` 1, `tf_distill.losses.logits.position_mask`) cut to the inputs' length (what is
  cut is padding, label -1); span labels [batch, 2] (sequence_axis 2: positions, not per token) as they are."""
  labels = tf.convert_to_tensor(labels)
  if labels.shape.rank == 1 or sequence_axis != 1:
    return labels
  return labels[:, :tf.shape(inputs["input_ids"])[1]]


def student_logits_layout(student) -> LogitsLayout:
  """The `LogitsLayout` of the student's head; for a model without one (a bare Keras model in a test), the
  tagger's, so that the rank of the logits decides as it always did."""
  head = getattr(getattr(student, "config", None), "head", None)
  return logits_layout(head) if head else LogitsLayout(1)


def pad_to_length(logits, length, layout: LogitsLayout = LogitsLayout(1)):
  """Logits of trimmed inputs padded back to the features' full `length` along `layout.sequence_axis` with
  `layout.padding_logit`, so that the batches of `predict` concatenate into one array: per-token logits
  [batch, trimmed, num_tags] -> [batch, length, num_tags] with zeros, span logits [batch, 2, trimmed] ->
  [batch, 2, length] with MASKED_LOGIT (what the span head gives padding at full length); logits [batch, num_labels]
  (one per example; also any rank-2 logits) as they are."""
  if logits.shape.rank == 2 or layout.sequence_axis is None:
    return logits
  axis = layout.sequence_axis
  paddings = [[0, 0]] * logits.shape.rank
  paddings[axis] = [0, length - tf.shape(logits)[axis]]
  return tf.pad(logits, paddings, constant_values=layout.padding_logit)


def replica_share(mask):
  """This replica's share of the global batch's positions, local / global: float32 scalar (1.0 on one device), and
  the local count.

  `mask` is the positions' mask of the logits terms (`tf_distill.losses.logits.position_mask`): ones [batch] for a
  classifier, so the share is that of the examples; the input mask [batch, seq] for a tagger, so it is that of the
  real tokens. Keras' optimizer sums gradients over replicas, so a per-replica mean over its positions scaled by its
  share gives the gradient of the mean over the global batch's positions -- also for the uneven last batch (compare
  TF issue 48817). The feature terms, means over real tokens, get the same share.
  """
  local = tf.reduce_sum(tf.cast(mask, tf.float32))
  context = tf.distribute.get_replica_context()
  total = context.all_reduce(tf.distribute.ReduceOp.SUM, local) if context else local
  return local / tf.maximum(total, 1.0), local


class Distiller(keras.Model):
  """Trains `student` against labels and (when alpha > 0) the teacher's soft labels."""

  def __init__(self, student: keras.Model, teacher: Optional[TeacherSource] = None, alpha: float = 0.5,
               temperature: float = 2.0, kd_loss: str = "ce", matches: Sequence[Match] = (),
               temperature_fn: Optional[Callable] = None, shift_probabilities: bool = False, labelled: bool = True,
               **kwargs):
    """`labelled=False`: the data has no labels (general distillation: every label -1, alpha 0, matches only), so
    the progress bar and history show the loss and the feature loss, not a hard loss and an accuracy of 0."""
    super().__init__(**kwargs)
    if not 0.0 <= alpha <= 1.0:
      raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if temperature <= 0:
      raise ValueError(f"temperature must be > 0, got {temperature}")
    if (alpha > 0 or matches) and teacher is None:
      raise ValueError(f"alpha={alpha} needs a teacher (and so do the {len(matches)} intermediate matches); pass "
                       "one, or set alpha=0 and no matches for hard labels only")
    if kd_loss == "mse" and (temperature != 1.0 or temperature_fn is not None):
      raise ValueError(f"kd_loss 'mse' matches raw logits and takes no temperature; got temperature={temperature}, "
                       "use --temperature=1 and no temperature schedule")
    self.student = student
    self.logits_layout = student_logits_layout(student)
    self._teacher = [teacher]  # a list of a plain object: hidden from Keras tracking, so never saved or trained
    self.kd_loss = kd_loss
    self._kd_fn = kd_loss_fn(kd_loss)
    self._temperature_fn = temperature_fn
    self.shift_probabilities = bool(shift_probabilities)
    self._initial = {"alpha": float(alpha), "temperature": float(temperature)}
    self.alpha = tf.Variable(float(alpha), trainable=False, name="alpha")
    self.temperature = tf.Variable(float(temperature), trainable=False, name="temperature")
    self.logits_weight = tf.Variable(1.0, trainable=False, name="logits_weight")
    self.feature_weight = tf.Variable(1.0, trainable=False, name="feature_weight")
    self.matches = tuple(matches)
    self._feature_losses = [feature_loss(m.loss) for m in self.matches]
    self.teacher_outputs = teacher_outputs_needed(alpha, self.matches)
    if self.teacher_outputs:
      teacher.check_outputs(self.teacher_outputs)
    self.match_weights = tf.Variable([m.weight for m in self.matches] or [0.0], trainable=False,
                                     name="match_weights")
    self.projections = self._build_projections()
    self.loss_tracker = keras.metrics.Mean(name="loss")
    self.hard_loss_tracker = keras.metrics.Mean(name="hard_loss")
    self.kd_loss_tracker = keras.metrics.Mean(name="kd_loss")
    self.feature_loss_tracker = keras.metrics.Mean(name="feature_loss")
    self.accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    # What the progress bar and history show: the loss terms this run has (no kd_loss 0.0 when fine-tuning).
    self.labelled = bool(labelled)
    self._shown_metrics = [self.loss_tracker]
    if self.teacher_outputs and self.labelled:
      self._shown_metrics.append(self.hard_loss_tracker)
    if "logits" in self.teacher_outputs:
      self._shown_metrics.append(self.kd_loss_tracker)
    if self.matches:
      self._shown_metrics.append(self.feature_loss_tracker)
    if self.labelled:
      self._shown_metrics.append(self.accuracy)

  def _build_projections(self) -> Dict[str, Projection]:
    """One `Projection` (student width -> teacher width) per match whose loss needs it, when the widths differ."""
    if not self.matches:
      return {}
    student_config = self.student.config
    if not student_type(self.student).intermediate_outputs:
      raise ValueError("intermediate matches need a BERT student (hidden states and attention); the "
                       f"{student_config.model_type} student takes logits losses only")
    student_width = student_config.hidden_size
    teacher_width = int(self.teacher.bert_config["hidden_size"])
    projections = {}
    for i, (match, spec) in enumerate(zip(self.matches, self._feature_losses)):
      if spec.needs_projection and student_width != teacher_width:
        projections[f"match_{i}"] = Projection(teacher_width, name=f"projection_{i}", dtype="float32")
        projections[f"match_{i}"].build([None, None, student_width])
    return projections

  @property
  def teacher(self) -> Optional[TeacherSource]:
    return self._teacher[0]

  @property
  def metrics(self):
    return list(self._shown_metrics)

  def call(self, inputs, training=None):
    return self.student(inputs, training=training)

  def compute_losses(self, labels, student_logits, teacher_logits, mask=None):
    """Returns (logits term, hard, kd) scalars for one batch: (1 - alpha) * hard + alpha * kd, hard, kd.

    Args:
      labels: int32 [batch] or [batch, seq].
      student_logits, teacher_logits: float32 [batch, num_labels] or [batch, seq, num_labels]; teacher None: kd = 0.
      mask: float32 with the labels' shape (`position_mask`), or None for every position.

    The temperature is the variable, or per example or position from `temperature_fn` (flsw / cwsm give one value
    per row of the logits' leading axes), broadcast over what it lacks.
    """
    hard = hard_cross_entropy(labels, student_logits, mask)
    if teacher_logits is not None and self.shift_probabilities:
      teacher_logits = probability_shift(teacher_logits, labels)
    if teacher_logits is None:
      kd = tf.zeros_like(hard)
    elif self.kd_loss == "mse":
      kd = self._kd_fn(teacher_logits, student_logits, 1.0, mask)
    else:
      temperature = self.temperature
      if self._temperature_fn is not None:
        temperature = tf.stop_gradient(self._temperature_fn(student_logits, teacher_logits, self.temperature))
      kd = self._kd_fn(teacher_logits, student_logits, temperature, mask)
    return (1.0 - self.alpha) * hard + self.alpha * kd, hard, kd

  def feature_losses(self, teacher_outputs, student_outputs, mask):
    """sum_i w_i * loss_i over the intermediate matches (0.0 without matches): float32 scalar."""
    terms = []
    student_config = self.student.config
    for i, (match, spec) in enumerate(zip(self.matches, self._feature_losses)):
      teacher = spec.select(teacher_outputs, match.teacher_layer)
      student = spec.select(student_outputs, match.student_layer)
      projection = self.projections.get(f"match_{i}")
      if projection is not None:
        student = tuple(projection(x) for x in student) if isinstance(student, tuple) else projection(student)
      options = {}
      if "num_heads" in spec.options:
        options["num_heads"] = student_config.num_attention_heads
      if "num_relation_heads" in spec.options:
        options["num_relation_heads"] = student_config.num_attention_heads
      terms.append(self.match_weights[i] * spec.fn(teacher, student, mask=mask, **options))
    return tf.add_n(terms) if terms else tf.constant(0.0)

  def train_step(self, data):
    features, labels = data
    inputs = trim_padding(features)
    axis = self.logits_layout.sequence_axis
    labels = trim_labels(labels, inputs, axis)
    mask = position_mask(labels, inputs["input_mask"], axis)
    teacher_outputs = {}
    if self.teacher_outputs:
      if self.teacher.needs_example_index and INDEX_KEY not in features:
        raise ValueError(f"the teacher source {self.teacher} looks examples up by {INDEX_KEY!r}, but the batches "
                         f"lack {INDEX_KEY!r}; add it to the training features (tf_distill.run.DistillRun does)")
      query = {**inputs, INDEX_KEY: features[INDEX_KEY]} if INDEX_KEY in features else inputs
      teacher_outputs = self.teacher(query, outputs=self.teacher_outputs)
    share, local = replica_share(mask)
    with tf.GradientTape() as tape:
      student_outputs = self.student(inputs, training=True, logits_only=not self.matches)
      student_logits = student_outputs["logits"]
      logits_term, hard, kd = self.compute_losses(labels, student_logits, teacher_outputs.get("logits"), mask)
      features_term = self.feature_losses(teacher_outputs, student_outputs, inputs["input_mask"])
      loss = self.logits_weight * logits_term + self.feature_weight * features_term
      # A replica can get no examples of the last, partial batch: its mean losses are 0 or NaN, its share is 0.
      loss, hard, kd, features_term = (tf.where(local > 0, x, 0.0) for x in (loss, hard, kd, features_term))
      scaled_loss = loss * share
      if isinstance(self.optimizer, keras.mixed_precision.LossScaleOptimizer):  # compile() adds it for mixed_float16
        scaled_loss = self.optimizer.get_scaled_loss(scaled_loss)
    variables = self.trainable_variables
    gradients = tape.gradient(scaled_loss, variables)
    if isinstance(self.optimizer, keras.mixed_precision.LossScaleOptimizer):
      gradients = self.optimizer.get_unscaled_gradients(gradients)
    if self.distribute_strategy.num_replicas_in_sync > 1:
      # Embedding gradients are IndexedSlices with one row per token; replicas with different token counts cannot
      # all-reduce them as slices (collective shape mismatch), so they are summed dense.
      gradients = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in gradients]
    self.optimizer.apply_gradients(zip(gradients, variables))
    return self._update_metrics(labels, student_logits, loss, hard, kd, features_term, mask, weight=local)

  def test_step(self, data):
    """Dev evaluation scores the student alone: labels only, no teacher query. The dev loss is the hard term as
    training computes it (its mean over the batch's positions, for a tagger its real tokens), accuracy is over the
    labelled positions."""
    features, labels = data
    inputs = trim_padding(features)
    axis = self.logits_layout.sequence_axis
    labels = trim_labels(labels, inputs, axis)
    mask = position_mask(labels, inputs["input_mask"], axis)
    student_logits = self.student(inputs, training=False, logits_only=True)["logits"]
    local = tf.reduce_sum(mask)
    hard = tf.where(local > 0, hard_cross_entropy(labels, student_logits, mask), 0.0)
    # Only what is computed: the dev loss is the hard loss, and there is no teacher term (no val_kd_loss of 0).
    self.loss_tracker.update_state(hard, sample_weight=local)
    self.accuracy.update_state(tf.maximum(labels, 0), student_logits,
                               sample_weight=mask * tf.cast(labels >= 0, tf.float32))
    return {m.name: m.result() for m in (self.loss_tracker, self.accuracy)}

  def simulate_int8(self, simulated: bool) -> None:
    """Switches the student's int8 simulation (`tf_distill.quantization_aware`; the student must be prepared) and,
    when that changes the graph, drops the traced train, test and predict functions so that Keras traces them
    again (also in the middle of `fit`: Keras reads `train_function` at every step)."""
    if quantization_aware.set_simulated(self.student, simulated):
      self.train_function = self.test_function = self.predict_function = None
      if getattr(self, "optimizer", None) is not None:  # compiled: fit may be running, it needs a train function
        self.make_train_function()

  def predict_step(self, data):
    """Student logits [batch, num_labels], or [batch, seq, num_tags] / [batch, 2, seq] at the features' full length
    (`pad_to_length` along the student head's sequence axis; the trimmed padding gets the head's padding logit)."""
    features = data[0] if isinstance(data, tuple) else data
    logits = self.student(trim_padding(features), training=False, logits_only=True)["logits"]
    return pad_to_length(logits, tf.shape(features["input_ids"])[1], self.logits_layout)

  def _update_metrics(self, labels, logits, loss, hard, kd, feature_term, mask, weight=None):
    """Loss metrics are means weighted by the batch's positions (`mask`: examples, or a tagger's real tokens), so
    across replicas they report the global batch mean. hard_loss and accuracy are over the labelled positions only:
    positions with label -1 (unlabeled transfer-set examples; a tagger's [CLS], [SEP] and later word pieces) add 0 to
    the hard term of the loss (a mean over all positions), so its batch value is rescaled to the labelled mean."""
    has_label = mask * tf.cast(labels >= 0, tf.float32)
    labelled = tf.reduce_sum(has_label)
    positions = tf.reduce_sum(mask)
    self.loss_tracker.update_state(loss, sample_weight=weight)
    self.hard_loss_tracker.update_state(tf.math.divide_no_nan(hard * positions, labelled), sample_weight=labelled)
    self.kd_loss_tracker.update_state(kd, sample_weight=weight)
    self.feature_loss_tracker.update_state(feature_term, sample_weight=weight)
    self.accuracy.update_state(tf.maximum(labels, 0), logits, sample_weight=has_label)
    return {m.name: m.result() for m in self.metrics}

  def get_config(self):
    return {**self._initial, "kd_loss": self.kd_loss, "matches": format_matches(self.matches),
            "shift_probabilities": self.shift_probabilities, "labelled": self.labelled}
