"""A long run (BERT, ResNet) on the TensorFlow backend: the ``tf.distribute`` strategy and
precision the flags ask for (:func:`set_up`), the model and optimizer in its scope, the
recipes' step (:class:`~recipes.common.training.StepRunner`), ``tf.train`` checkpoints and
held-out evaluation on the replicas (:class:`Evaluator`), then the shared step driver
(:func:`recipes.common.driver.run_steps`). :mod:`recipes.common.jax_driver` is its JAX
counterpart; :func:`recipes.common.driver.train` picks one.
"""

import keras
import tensorflow as tf

from . import batching, checkpointing, distribute, driver, optimizers, runtime, training


def set_up(fv):
    """The TensorFlow side of :func:`recipes.common.driver.make_strategy`: splits the CPU into
    ``--cpu_replicas`` logical devices, builds the ``--strategy`` (:mod:`distribute`) and sets
    the dtype policy ``--precision`` asks for ('auto': mixed_bfloat16 on a TPU, float32
    elsewhere).

    Returns:
        ``(strategy, policy)``: the strategy and the policy's name.
    """
    if fv.cpu_replicas:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * fv.cpu_replicas
        )
    strategy = distribute.make_strategy(fv.strategy, fv.tpu)
    policy = fv.precision
    if policy == "auto":
        on_tpu = isinstance(strategy, tf.distribute.TPUStrategy)
        policy = "mixed_bfloat16" if on_tpu else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return strategy, policy


class Evaluator:
    """Sums a task's metrics over one pass of held-out data, on every replica.

    Args:
        strategy: the run's strategy.
        model: the model (built in ``strategy``'s scope).
        task: ``task(model, batch, training) -> (loss_sum, metrics)`` as for
            :class:`~recipes.common.training.StepRunner`.
        make_dataset: ``make_dataset(batch_size, num_shards, shard_index) -> tf.data.Dataset``,
            a finite pass over this input pipeline's share of the held-out examples in batches
            of ``batch_size`` (per replica). On a TPU the last partial batch must be dropped.
        per_replica_batch_size: int.
        flag: the flag naming the held-out files, for the error when they hold no records.
    """

    def __init__(self, strategy, model, task, make_dataset, per_replica_batch_size,
                 flag="--eval_files"):
        self.strategy = strategy
        self.flag = flag
        self._make = lambda context: make_dataset(
            per_replica_batch_size, context.num_input_pipelines, context.input_pipeline_id
        )

        def replica(batch):
            loss, metrics = task(model, batch, False)
            return dict(metrics, loss=loss)

        @tf.function
        def step(batch):
            sums = strategy.run(replica, args=(batch,))
            return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                    for k, v in sums.items()}

        self._step = step

    def __call__(self):
        """The metric sums (Python floats) over the held-out data, ``loss`` included.

        Raises:
            ValueError: the held-out data holds no examples (the message names the flag).
        """
        totals = {}
        for batch in self.strategy.distribute_datasets_from_function(self._make):
            for k, v in self._step(batch).items():
                totals[k] = totals.get(k, 0.0) + float(v)
        if not totals.get("examples"):
            raise ValueError(f"{self.flag}: the held-out files hold no records.")
        return totals


def open_checkpoints(strategy, fv, log=print, **objects):
    """A :class:`~recipes.common.checkpointing.Checkpointer` of ``objects`` (model, optimizer,
    the feed's iterator) in ``--output_dir``, restored from its newest checkpoint if any.

    Returns:
        ``(checkpointer, resumed)``: ``resumed`` is the restored checkpoint's path or None.
    """
    checkpointer = checkpointing.Checkpointer(strategy, fv.output_dir, **objects)
    resumed = checkpointer.restore_latest()
    if resumed:
        log(f"resumed from {resumed}")
    return checkpointer, resumed


def train(fv, strategy, policy, *, config, summary, build_model, build_optimizer, task,
          train_dataset, train_steps, summarize, eval_dataset=None, run_config=None,
          explain_data_error=None, on_fresh_start=None, layout_map=None, log=print):
    """:func:`recipes.common.driver.train` on the TensorFlow backend (same arguments)."""
    if fv.model_parallel > 1:
        raise ValueError("--model_parallel runs on the JAX backend (KERAS_BACKEND=jax); "
                         "TensorFlow's strategies here are data parallel.")
    plan = batching.plan_batch(
        config.global_batch_size, strategy.num_replicas_in_sync, fv.max_per_replica_batch_size
    )
    log(f"{distribute.strategy_name(strategy)}: {plan.describe()}")
    log(f"{summary}, {policy}, {'XLA' if fv.jit_compile else 'graph'} passes")
    runtime.make_dirs(fv.output_dir)

    keras.utils.set_random_seed(fv.seed)
    with strategy.scope():
        model = build_model()
        optimizer = build_optimizer(model.trainable_variables)
        optimizer.build(model.trainable_variables)
    feed = training.DataFeed(strategy, train_dataset, plan.per_replica_batch_size,
                             save_iterator=fv.resume_data == "iterator")
    checkpointer, resumed = open_checkpoints(
        strategy, fv, log, model=model, optimizer=optimizer, **feed.trackable(fv.output_dir)
    )
    if checkpointer.is_chief:
        driver.write_run_config(fv, config, plan, distribute.strategy_name(strategy), policy,
                                run_config)
    if not resumed and on_fresh_start:
        on_fresh_start(model)
    evaluate = None
    if eval_dataset:
        evaluate = Evaluator(strategy, model, task, eval_dataset, plan.per_replica_batch_size)
    return driver.run_steps(
        fv,
        runner=training.StepRunner(strategy, model, optimizer, task, plan,
                                   jit_compile=fv.jit_compile),
        feed=feed, checkpointer=checkpointer, train_steps=train_steps, summarize=summarize,
        evaluate=evaluate, explain_data_error=explain_data_error,
        trust_ratios=optimizers.adapts_layers(config.optimizer), log=log,
    )
