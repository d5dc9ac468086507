"""Distils a teacher SavedModel into a smaller BERT or a BiLSTM student, querying the teacher online (or from a cache).

    python -m tf_distill.cli.distill --teacher_model=export/teacher --output_dir=runs/student \
        --student_num_layers=2 --student_init_layers=1,4 --temperature=2 --alpha=0.5

Intermediate losses: --layer_map=uniform --intermediate_matches=hidden_mse,attention_mse_scores; recipes are the
presets in flags/ (distilbert6, pkd_skip, tinybert4, minilm, bilstm). With --alpha=0 and no matches the same student is
trained on hard labels only (the no-distillation baseline). Writes the same files as train_teacher; export the student
with export_student. Rerunning the same command after a crash resumes from <output_dir>/resume.
"""

import dataclasses
import os

from absl import app, flags
import numpy as np

from tf_distill import teacher_cache
from tf_distill.cli import common
from tf_distill.configs import save_json
from tf_distill.distiller import Distiller
from tf_distill.distribute import worker_output_dir
from tf_distill.layer_map import parse_matches, required_layers, required_outputs
from tf_distill.schedules import (LinearSchedule, StageSchedule, parse_stages, parse_value_schedule,
                                  temperature_fn_from_spec)
from tf_distill.students.bert import build_bert_student
from tf_distill.students.bilstm import BiLstmConfig, build_bilstm_student, teacher_word_embeddings
from tf_distill.teacher import SavedModelTeacher
from tf_distill.training import load_data, set_seed, steps_per_epoch, train_and_evaluate, write_run_info

FLAGS = flags.FLAGS


def define_flags() -> None:
  common.define_data_flags()
  common.define_train_flags("runs/student", default_learning_rate=1e-4, default_epochs=3)
  common.define_student_flags()


def build_student(student_config, teacher):
  if student_config.student_type == "bilstm":
    config = BiLstmConfig(vocab_size=int(teacher.bert_config["vocab_size"]), num_labels=teacher.num_labels,
                          embedding_size=student_config.embedding_size, lstm_units=student_config.lstm_units,
                          hidden_units=student_config.bilstm_hidden_units)
    return build_bilstm_student(config, teacher_word_embeddings(teacher.variables))
  return build_bert_student(teacher.bert_config, student_config, teacher.variables)


def schedule_callbacks(distill_config, stages, total_steps):
  callbacks = [StageSchedule(stages)] if stages else []
  for attribute, spec, start in (("temperature", distill_config.temperature_schedule, distill_config.temperature),
                                 ("alpha", distill_config.alpha_schedule, distill_config.alpha)):
    if spec.startswith(("flsw", "cwsm")):
      continue
    end = parse_value_schedule(spec, f"{attribute}_schedule")
    if end is not None:
      callbacks.append(LinearSchedule(attribute, start, end, total_steps))
  return callbacks


def attach_teacher_cache(distill_config, teacher, data, data_config, out, matches=()):
  """--teacher_cache: adds the cached raw teacher logits to the training features as `teacher_logits`.

  With intermediate matches the cache also holds (float16) exactly the teacher outputs and layers they read; the
  features get an `example_index` column to look them up, and the cache is returned for the Distiller (else None).
  """
  if distill_config.teacher_cache == "off":
    return None
  train = data.features["train"]
  key = teacher_cache.cache_key(teacher.path, data_config.vocab_file, data_config.max_seq_length,
                                teacher_cache.features_fingerprint(train))
  cache_dir = distill_config.teacher_cache_dir or os.path.join(out, "teacher_cache")
  intermediates = required_outputs(matches, "teacher")
  outputs = ("logits",) + tuple(k for k in intermediates if k != "logits")
  layers = [layer - 1 for layer in required_layers(matches, "teacher")] or None
  teacher.require(outputs)
  cache = teacher_cache.resolve(distill_config.teacher_cache, cache_dir, key, teacher, train, outputs=outputs,
                                layers=layers if any(k != "embeddings" for k in intermediates) else None)
  train["teacher_logits"] = cache.logits
  if not matches:
    return None
  train[teacher_cache.INDEX_KEY] = np.arange(len(train["input_ids"]), dtype=np.int64)
  return cache


def main(argv) -> None:
  del argv
  strategy = common.strategy_from_flags(FLAGS)
  distill_config = common.distill_config_from_flags(FLAGS)
  student_config = common.student_config_from_flags(FLAGS)
  train_config = common.train_config_from_flags(FLAGS)
  if student_config.student_type == "bilstm" and train_config.mixed_precision != "float32":
    raise ValueError(f"--mixed_precision={train_config.mixed_precision} is for BERT students; train the BiLSTM "
                     "student in float32")
  common.set_precision(train_config)
  stages = parse_stages(distill_config.stages)
  if stages:
    train_config = dataclasses.replace(train_config, num_train_epochs=sum(n for _, n in stages))
  temperature_fn = temperature_fn_from_spec(distill_config.temperature_schedule)
  teacher = SavedModelTeacher(distill_config.teacher_model)
  default_vocab = os.path.join(teacher.path, "assets.extra", "vocab.txt")
  data_config = common.data_config_from_flags(FLAGS, default_vocab_file=default_vocab)
  out = worker_output_dir(train_config.output_dir)
  save_json(os.path.join(out, "config.json"), data=data_config, train=train_config, distill=distill_config,
            student=student_config)
  set_seed(train_config.seed)
  data = load_data(data_config, max_train_examples=train_config.max_train_examples)
  teacher.check_compatible(data.labels, data_config.vocab_file, data_config.max_seq_length)
  teacher_layers = int(teacher.bert_config["num_hidden_layers"])
  matches = parse_matches(distill_config.intermediate_matches, student_config.num_hidden_layers, teacher_layers,
                          distill_config.layer_map) if distill_config.intermediate_matches else ()
  uses_teacher = distill_config.alpha > 0 or bool(matches)
  cache = attach_teacher_cache(distill_config, teacher, data, data_config, out, matches) if uses_teacher else None
  with strategy.scope():
    student = build_student(student_config, teacher)
    distiller = Distiller(student, teacher if uses_teacher else None, alpha=distill_config.alpha,
                          temperature=distill_config.temperature, kd_loss=distill_config.kd_loss, matches=matches,
                          temperature_fn=temperature_fn, teacher_cache=cache,
                          shift_probabilities=distill_config.probability_shift)
  write_run_info(out, student, data_config, data.labels)
  num_train, max_seq_length = data.features["train"]["input_ids"].shape
  total_steps = steps_per_epoch(num_train, max_seq_length, train_config.train_batch_size) * int(
      train_config.num_train_epochs)
  train_and_evaluate(distiller, data, train_config, out, FLAGS.do_train, FLAGS.do_eval,
                     f"student (alpha={distill_config.alpha}, matches={len(matches)})",
                     callbacks=schedule_callbacks(distill_config, stages, total_steps))


def run() -> None:
  """Console entry point."""
  define_flags()
  app.run(common.run_main(main))


if __name__ == "__main__":
  run()
