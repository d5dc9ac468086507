"""`--distribution_strategy`: one device, mirrored replicas on one machine, or multi-worker mirrored via TF_CONFIG.

Models, the optimizer and the `Distiller` are built under `strategy.scope()`; Keras' `fit` splits each global batch
across replicas and `tf_distill.distiller.replica_share` scales every replica's loss by its share of the global batch,
so N replicas take the same step as one device on the same global batch.
"""

import json
import os

import tf_distill  # noqa: F401
import tensorflow as tf

STRATEGIES = ("one_device", "mirrored", "multi_worker_mirrored")


def configure_cpu_replicas(count: int) -> None:
  """Splits the CPU into `count` logical devices (so `mirrored` has `count` replicas on a CPU-only machine).

  Must run before TensorFlow initialises its devices, i.e. before any op runs."""
  if count < 1:
    raise ValueError(f"cpu_replicas must be >= 1, got {count}")
  cpus = tf.config.list_physical_devices("CPU")
  try:
    tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * count)
  except RuntimeError as e:
    raise ValueError(f"cannot split the CPU into {count} devices after TensorFlow has started ({e}); set "
                     "--cpu_replicas before anything else runs") from None


def make_strategy(name: str) -> tf.distribute.Strategy:
  """The `tf.distribute` strategy named `name` (one of STRATEGIES)."""
  if name == "one_device":
    return tf.distribute.get_strategy()
  if name == "mirrored":
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
    return tf.distribute.MirroredStrategy(devices=devices)
  if name == "multi_worker_mirrored":
    if "TF_CONFIG" not in os.environ:
      raise ValueError("multi_worker_mirrored needs TF_CONFIG in the environment (the cluster's worker addresses "
                       'and this task, e.g. {"cluster": {"worker": ["host1:port", "host2:port"]}, "task": '
                       '{"type": "worker", "index": 0}}); start one process per worker')
    return tf.distribute.MultiWorkerMirroredStrategy()
  raise ValueError(f"unknown distribution_strategy {name!r}; use one of {list(STRATEGIES)}")


def task_index() -> int:
  """This worker's index in TF_CONFIG (0 when there is none)."""
  config = json.loads(os.environ.get("TF_CONFIG", "{}"))
  return int(config.get("task", {}).get("index", 0))


def is_chief() -> bool:
  """Worker 0 (or the only process) writes the run's outputs."""
  return task_index() == 0


def worker_output_dir(output_dir: str) -> str:
  """Where this process writes: `output_dir` for the chief, `output_dir/workers/<index>` for the other workers
  (every worker must take part in saving checkpoints, but only the chief's files are the run's)."""
  return output_dir if is_chief() else os.path.join(output_dir, "workers", str(task_index()))
