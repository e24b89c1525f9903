"""A long run (BERT, ResNet) on the JAX backend: the same flags, configuration, model, task
and data pipeline as on TensorFlow, and the same step driver
(:func:`recipes.common.driver.run_steps`: logs, TensorBoard, progress bar, evaluations,
checkpoints, resumption after a kill); what differs is below the step.

- Devices: ``keras.distribution.DataParallel`` over every JAX device (TPU cores, GPUs, or
  ``--cpu_replicas`` virtual CPU devices); the global batch is split across them, and
  accumulated over passes beyond ``--max_per_replica_batch_size`` per device. With
  ``--model_parallel=M`` the devices form a (batch, model) mesh and ``ModelParallel`` splits
  the large kernels along its model axis by the recipe's layout (BERT's:
  :mod:`recipes.bert.layout`); the batch is split along the batch axis only.
- The step: :class:`~recipes.common.jax_training.JaxStepRunner`, one compiled function.
- The data: the recipe's input pipeline runs on the host and each pass's batch is split
  across the devices: tf.data from TFRecords where TensorFlow is installed, or grain from
  NumPy shards (:mod:`recipes.common.array_shards`) with no TensorFlow at all. A resumed run
  starts after what the finished steps consumed (``--resume_data=skip`` whatever the flag
  says: a JAX feed has no iterator to save; grain goes straight to the batch, tf.data reads
  its way there).
- Checkpoints: orbax-checkpoint (:mod:`recipes.common.jax_checkpointing`).
- Several hosts: ``--strategy=multi_worker`` joins them through ``jax.distributed``
  (:func:`set_up`); each reads its own share of the files, host 0 writes the logs.
"""

import importlib.util

import jax
import keras
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

from . import batching, driver, jax_checkpointing, jax_training, optimizers, runtime


def set_up(fv, tf_data=True):
    """The JAX side of :func:`recipes.common.driver.make_strategy`: splits the CPU into
    ``--cpu_replicas`` devices (before JAX first lists its devices) and sets the dtype policy
    ``--precision`` asks for ('auto': mixed_bfloat16 on a TPU, float32 elsewhere).

    With ``--strategy=multi_worker`` it joins this process to the cluster first
    (``keras.distribution.initialize``, i.e. ``jax.distributed``): on a Cloud TPU slice JAX
    finds the hosts itself; elsewhere every host sets ``KERAS_DISTRIBUTION_JOB_ADDRESSES``
    (``host:port`` of process 0 first, comma-separated), ``KERAS_DISTRIBUTION_NUM_PROCESSES``
    and its own ``KERAS_DISTRIBUTION_PROCESS_ID``. CPU devices of several processes reduce
    through gloo.

    Where TensorFlow is installed it is kept off the GPUs (tf.data reads TFRecords on the
    host, and Keras seeds TensorFlow too); a run from NumPy shards needs none.

    Raises:
        ValueError: ``tf_data`` and TensorFlow does not import (the message says what to
            install).

    Returns:
        The policy's name.
    """
    # orbax logs every file of every save at INFO, which absl prints by default.
    logging.set_verbosity(logging.WARNING)
    # The accelerators are JAX's. Keras imports TensorFlow wherever it is installed, to seed
    # it (keras.utils.set_random_seed); its runtime must not take the GPUs' memory.
    if tf_data or importlib.util.find_spec("tensorflow") is not None:
        try:
            import tensorflow as tf
        except ImportError as error:
            if tf_data:
                raise ValueError(
                    "The input files are read with tf.data, which needs TensorFlow "
                    f"({error}): pip install tensorflow-cpu. BERT also reads NumPy shards "
                    "without it (tf-lamb-bert-data --output_format=npy)."
                ) from error
            logging.warning("TensorFlow is installed but does not import (%s); this run "
                            "reads NumPy shards and needs none.", error)
        else:
            tf.config.set_visible_devices([], "GPU")
    if fv.cpu_replicas:
        jax.config.update("jax_num_cpu_devices", fv.cpu_replicas)
    if fv.strategy == "multi_worker":
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        keras.distribution.initialize()
    policy = fv.precision
    if policy == "auto":
        policy = "mixed_bfloat16" if jax.default_backend() == "tpu" else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return policy


def _numpy_batches(dataset):
    """An iterator of NumPy structures over ``dataset`` (a ``tf.data.Dataset`` or any
    iterable of NumPy structures)."""
    return iter(dataset.as_numpy_iterator() if hasattr(dataset, "as_numpy_iterator")
                else dataset)


class DatasetFeed:
    """Each step's batch from this host's input pipeline, split across the devices.

    The pipeline is built again on resumption, past what the finished steps consumed
    (:meth:`skip_passes`): its order is a function of the seed and the files.

    Args:
        make_dataset: ``make_dataset(batch_size, num_shards, shard_index, skip)``, an iterable
            of this host's batches (NumPy structures, or a ``tf.data.Dataset``), as
            :class:`recipes.common.training.DataFeed` takes it.
        plan: the run's :class:`~recipes.common.batching.BatchPlan`.
    """

    save_iterator = False

    def __init__(self, make_dataset, plan):
        self.make_dataset = make_dataset
        self.accumulation_steps = plan.accumulation_steps
        self.hosts, self.host = jax.process_count(), jax.process_index()
        self.batch_size = plan.pass_batch_size // self.hosts
        self._skip, self._iterator = 0, None

    def skip_passes(self, passes):
        """Resumes the data after ``passes`` forward/backward passes (optimizer steps x
        accumulation steps); call it before the first step."""
        self._skip, self._iterator = passes, None

    def next(self):
        """The next step's batch, placed on the devices: one pass, or with accumulation the
        passes stacked along a first axis."""
        if self._iterator is None:
            self._iterator = _numpy_batches(self.make_dataset(
                self.batch_size, self.hosts, self.host, self._skip * self.batch_size))
        if self.accumulation_steps == 1:
            return jax_training.place(next(self._iterator))
        passes = [next(self._iterator) for _ in range(self.accumulation_steps)]
        stacked = jax.tree_util.tree_map(lambda *arrays: np.stack(arrays), *passes)
        return jax_training.place(stacked, leading_axes=1)


class DatasetEvaluator:
    """Sums a task's metrics over one pass of held-out data, each batch split across the
    devices (the JAX counterpart of :class:`recipes.common.tf_driver.Evaluator`, same
    arguments less the strategy)."""

    def __init__(self, model, task, make_dataset, batch_size, flag="--eval_files"):
        self.step = jax_training.evaluation_step(model, task)
        self.make_dataset = make_dataset
        self.batch_size = batch_size // jax.process_count()
        self.flag = flag

    def __call__(self):
        """The metric sums (Python floats) over the held-out data, ``loss`` included. On
        several hosts every host must run the same steps: the pass stops at the first batch
        that is short or missing on any host (as a TPU drops the remainder).

        Raises:
            ValueError: the held-out data holds no examples (the message names the flag).
        """
        totals = {}
        dataset = self.make_dataset(self.batch_size, jax.process_count(), jax.process_index())
        iterator = _numpy_batches(dataset)
        while True:
            batch = next(iterator, None)
            if jax.process_count() > 1:
                rows = len(jax.tree_util.tree_leaves(batch)[0]) if batch is not None else 0
                if min(multihost_utils.process_allgather(np.int32(rows))) < self.batch_size:
                    break
            elif batch is None:
                break
            for k, v in self.step(jax_training.place(batch)).items():
                totals[k] = totals.get(k, 0.0) + float(v)
        if not totals.get("examples"):
            raise ValueError(f"{self.flag}: the held-out files hold no records.")
        return totals


def train(fv, policy, *, config, summary, build_model, build_optimizer, task, train_dataset,
          train_steps, summarize, eval_dataset=None, run_config=None, explain_data_error=None,
          on_fresh_start=None, layout_map=None, log=print):
    """:func:`recipes.common.driver.train` on the JAX backend (same arguments, ``policy`` from
    :func:`set_up` in place of the strategy and policy).

    Raises:
        ValueError: the global batch does not split over the devices' batch axis,
            ``--model_parallel`` does not divide the devices or the recipe has no
            ``layout_map``, an optimizer setting is out of its range, or a bad input file
            (named).
    """
    devices = jax.devices()[:1] if fv.strategy == "one_device" else jax.devices()
    distribution, mesh_shape = jax_training.make_distribution(devices, fv.model_parallel,
                                                                 layout_map)
    plan = batching.plan_batch(config.global_batch_size, mesh_shape[0],
                               fv.max_per_replica_batch_size)
    keras.distribution.set_distribution(distribution)
    layout = type(distribution).__name__ if distribution else "one device"
    mesh = f" as batch {mesh_shape[0]} x model {mesh_shape[1]}" if mesh_shape[1] > 1 else ""
    if jax.process_count() > 1:
        mesh = f" on {jax.process_count()} hosts" + mesh
    log(f"JAX {layout}, {len(devices)} {devices[0].platform} device(s){mesh}: "
        f"{plan.describe()}")
    log(f"{summary}, {policy}, XLA steps")
    runtime.make_dirs(fv.output_dir)

    keras.utils.set_random_seed(fv.seed)
    model = build_model()
    optimizer = build_optimizer(model.trainable_variables)
    optimizer.build(model.trainable_variables)
    feed = DatasetFeed(train_dataset, plan)
    checkpointer = jax_checkpointing.Checkpointer(fv.output_dir, model, optimizer)
    resumed = checkpointer.restore_latest()
    if resumed:
        log(f"resumed from {resumed}")
    if checkpointer.is_chief:
        driver.write_run_config(fv, config, plan, layout, policy, run_config, keras_backend="jax",
                                jit_compile=True, mesh={"batch": mesh_shape[0],
                                                        "model": mesh_shape[1]},
                                devices=f"{len(devices)} x {devices[0].device_kind}")
    if not resumed and on_fresh_start:
        on_fresh_start(model)
    evaluate = None
    if eval_dataset:
        evaluate = DatasetEvaluator(model, task, eval_dataset, plan.pass_batch_size)
    return driver.run_steps(
        fv, runner=jax_training.JaxStepRunner(model, optimizer, task, plan), feed=feed,
        checkpointer=checkpointer, train_steps=train_steps, summarize=summarize,
        evaluate=evaluate, explain_data_error=explain_data_error,
        trust_ratios=optimizers.adapts_layers(config.optimizer), log=log,
    )

