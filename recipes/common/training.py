"""The recipes' custom training loop under any ``tf.distribute`` strategy.

One optimizer step = ``accumulation_steps`` forward/backward passes on every replica, their
gradients summed, then one ``optimizer.apply_gradients`` (which all-reduces across replicas
in Keras' TensorFlow optimizer). A task's loss is a *sum* over its examples, divided here by
the global batch, so the step's gradient is exactly the mean over the global batch however it
is split across replicas, hosts and passes (ARCHITECTURE.md: why not ``model.fit``).
"""

import tensorflow as tf

from .distribute import host_index


class DataFeed:
    """Per-replica batches from one checkpointable ``tf.data`` iterator per host.

    ``tf.distribute``'s distributed iterators cannot be saved in a checkpoint (TF 2.21), so
    each host reads its own files with an ordinary iterator (which can) and splits each
    element among its local replicas. On a TPU the dataset is distributed by the strategy for
    its infeed instead; there a resumed run restarts the data order (:attr:`exact_resume`).

    Args:
        strategy: the run's strategy.
        make_dataset: ``make_dataset(batch_size, num_shards, shard_index) -> tf.data.Dataset``
            of this host's elements of ``batch_size`` examples.
        per_replica_batch_size: int.
    """

    def __init__(self, strategy, make_dataset, per_replica_batch_size):
        self.strategy = strategy
        hosts, index = host_index(strategy)
        self.local_replicas = strategy.num_replicas_in_sync // hosts
        self.per_replica = per_replica_batch_size
        self.first_replica = index * self.local_replicas
        self.exact_resume = not isinstance(strategy, tf.distribute.TPUStrategy)
        if self.exact_resume:
            dataset = make_dataset(per_replica_batch_size * self.local_replicas, hosts, index)
        else:
            dataset = strategy.distribute_datasets_from_function(
                lambda context: make_dataset(
                    per_replica_batch_size, context.num_input_pipelines, context.input_pipeline_id
                )
            )
        self.iterator = iter(dataset)

    def trackable(self):
        """What to put in the checkpoint for the data position (empty on a TPU)."""
        return {"iterator": self.iterator} if self.exact_resume else {}

    def next(self):
        """The next per-replica batch (call inside the ``tf.function``)."""
        if not self.exact_resume:
            return next(self.iterator)
        batch = next(self.iterator)
        if self.local_replicas == 1:
            return self.strategy.experimental_distribute_values_from_function(lambda _: batch)

        def share(context):
            start = (context.replica_id_in_sync_group - self.first_replica) * self.per_replica
            return tf.nest.map_structure(lambda t: t[start : start + self.per_replica], batch)

        return self.strategy.experimental_distribute_values_from_function(share)


class StepRunner:
    """Compiled optimizer steps for ``model`` on ``strategy``.

    Args:
        strategy: a ``tf.distribute.Strategy``; ``model`` and ``optimizer`` were built in its
            scope.
        model: a built ``keras.Model``.
        optimizer: a ``keras.optimizers.Optimizer``.
        task: ``task(model, batch, training) -> (loss_sum, metrics)``: ``loss_sum`` a float32
            scalar, the sum of per-example losses over the replica's batch; ``metrics`` a
            dict of float32 scalar sums (e.g. correct predictions and counts).
        plan: a :class:`~recipes.common.distribute.BatchPlan`.
        jit_compile: bool, XLA-compile each pass (the optimizer compiles its own update).
    """

    def __init__(self, strategy, model, optimizer, task, plan, jit_compile=False):
        self.strategy = strategy
        self.model = model
        self.optimizer = optimizer
        self.task = task
        self.plan = plan
        variables = model.trainable_variables
        self._variables = variables
        self._accumulators = None
        if plan.accumulation_steps > 1:
            with strategy.scope():
                # One local sum per replica (SyncOnRead): each replica adds its own
                # gradients; apply_gradients does the cross-replica sum.
                self._accumulators = [
                    tf.Variable(
                        tf.zeros(v.shape, v.dtype),
                        trainable=False,
                        synchronization=tf.VariableSynchronization.ON_READ,
                        aggregation=tf.VariableAggregation.SUM,
                        name=f"gradient_sum_{i}",
                    )
                    for i, v in enumerate(variables)
                ]
        self._gradients = tf.function(self._replica_gradients, jit_compile=jit_compile)
        self.train_step = tf.function(self._train_step)

    def _replica_gradients(self, batch):
        with tf.GradientTape() as tape:
            loss_sum, metrics = self.task(self.model, batch, True)
            loss = loss_sum / self.plan.global_batch_size
        gradients = tape.gradient(loss, self._variables)
        return [tf.convert_to_tensor(g) for g in gradients], dict(metrics, loss=loss_sum)

    def _apply_pass(self, batch):
        gradients, metrics = self._gradients(batch)
        self.optimizer.apply_gradients(zip(gradients, self._variables))
        return metrics

    def _accumulate_pass(self, batch):
        gradients, metrics = self._gradients(batch)
        for total, gradient in zip(self._accumulators, gradients):
            total.assign_add(gradient)
        return metrics

    def _apply_accumulated(self):
        gradients = [total.read_value() for total in self._accumulators]
        self.optimizer.apply_gradients(zip(gradients, self._variables))
        for total in self._accumulators:
            total.assign(tf.zeros_like(total))

    def _sum(self, per_replica):
        return {
            k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
            for k, v in per_replica.items()
        }

    def _train_step(self, feed):
        """One optimizer step from ``feed`` (a :class:`DataFeed`); returns the step's metric
        sums over all replicas and passes (``loss``: the sum of per-example losses)."""
        if self._accumulators is None:
            return self._sum(self.strategy.run(self._apply_pass, args=(feed.next(),)))
        totals = self._sum(self.strategy.run(self._accumulate_pass, args=(feed.next(),)))
        for _ in tf.range(self.plan.accumulation_steps - 1):
            metrics = self._sum(self.strategy.run(self._accumulate_pass, args=(feed.next(),)))
            totals = {k: totals[k] + metrics[k] for k in totals}
        self.strategy.run(self._apply_accumulated)
        return totals
