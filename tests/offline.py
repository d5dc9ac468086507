"""Preparing a TFDS builder in a test with the network refused: sockets and GCS lookups fail and are recorded."""

import socket
from unittest import mock

import tensorflow_datasets as tfds
from tensorflow_datasets.core.utils import gcs_utils

from tf_distill.data import tfds_builders


def prepare_offline(builder_cls, data_dir):
  """(the builder prepared into `data_dir` by `tfds_builders.prepare`, the network calls it tried: [(name, args)])."""
  tfds.disable_progress_bar()
  network_calls = []

  def refuse(name):
    def fail(*args, **kwargs):
      del kwargs
      network_calls.append((name, args))
      raise OSError(f"network access in a test: {name}{args}")
    return fail

  with mock.patch.object(socket.socket, "connect", refuse("connect")), \
       mock.patch.object(socket, "getaddrinfo", refuse("getaddrinfo")), \
       mock.patch.object(gcs_utils, "exists", refuse("gcs_utils.exists")):
    builder = tfds_builders.prepare(builder_cls, data_dir)
  return builder, network_calls
