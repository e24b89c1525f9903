"""The recipes' custom training loop under any ``tf.distribute`` strategy.

One optimizer step = ``accumulation_steps`` forward/backward passes on every replica, their
gradients summed, then one ``optimizer.apply_gradients`` (which all-reduces across replicas
in Keras' TensorFlow optimizer). A task's loss is a *sum* over its examples, divided here by
the global batch (times the labels per example), so the step's gradient is exactly the mean
over the global batch however it is split across replicas, hosts and passes (``model.fit``
gives no such control, and does not run under ``MultiWorkerMirroredStrategy`` in Keras 3).
"""

import tensorflow as tf

from .distribute import host_index


class DataFeed:
    """Per-replica batches from one ``tf.data`` pipeline per host, resumable at a step.

    ``tf.distribute``'s distributed iterators cannot be saved in a checkpoint (TF 2.21), so off
    a TPU each host reads its own files with an ordinary iterator and splits each element among
    its local replicas. A resumed run finds its data position in one of two ways:

    - ``save_iterator=True`` (off a TPU): the iterator is saved in every checkpoint
      (:meth:`trackable`), shuffle buffer included, and restored with it.
    - otherwise (always on a TPU, whose infeed takes the strategy's distributed dataset): the
      pipeline is built again and the elements the finished steps consumed are skipped
      (:meth:`skip_passes`). The order is a function of the seed and the files, so the run
      goes on with the same examples; resuming re-reads what it skips.

    Args:
        strategy: the run's strategy.
        make_dataset: ``make_dataset(batch_size, num_shards, shard_index, skip) ->
            tf.data.Dataset`` of this pipeline's elements of ``batch_size`` examples, in an
            order fixed by its seed, past its first ``skip`` training examples (skipped before
            they are parsed or decoded).
        per_replica_batch_size: int.
        save_iterator: bool, see above (ignored on a TPU).
    """

    def __init__(self, strategy, make_dataset, per_replica_batch_size, save_iterator=True):
        self.strategy = strategy
        self.make_dataset = make_dataset
        hosts, index = host_index(strategy)
        self.hosts, self.host = hosts, index
        self.local_replicas = strategy.num_replicas_in_sync // hosts
        self.per_replica = per_replica_batch_size
        self.first_replica = index * self.local_replicas
        self.on_tpu = isinstance(strategy, tf.distribute.TPUStrategy)
        self.save_iterator = save_iterator and not self.on_tpu
        self.iterator = self._iterator(0)

    def _iterator(self, passes):
        """An iterator past the examples of ``passes`` forward/backward passes."""
        if not self.on_tpu:
            batch = self.per_replica * self.local_replicas
            return iter(self.make_dataset(batch, self.hosts, self.host, passes * batch))

        def pipeline(context):
            # Each pipeline feeds its share of the replicas one batch each per pass.
            share = context.num_replicas_in_sync // context.num_input_pipelines
            return self.make_dataset(
                self.per_replica, context.num_input_pipelines, context.input_pipeline_id,
                passes * share * self.per_replica,
            )

        return iter(self.strategy.distribute_datasets_from_function(pipeline))

    def trackable(self, directory=None):
        """What to put in the checkpoint for the data position: the iterator when it is saved.

        Args:
            directory: the run's checkpoint directory. When its newest checkpoint holds no
                iterator (the run started with ``--resume_data=skip``, or on a TPU), this run
                resumes by skipping too, whatever it was asked.
        """
        if self.save_iterator and directory:
            latest = tf.train.latest_checkpoint(directory)
            if latest and not any(name.startswith("iterator/")
                                  for name, _ in tf.train.list_variables(latest)):
                self.save_iterator = False
        return {"iterator": self.iterator} if self.save_iterator else {}

    def skip_passes(self, passes):
        """Resumes the data after ``passes`` forward/backward passes (optimizer steps x
        accumulation steps), when the iterator is not in the checkpoint. Call it before the
        first step."""
        if not self.save_iterator and passes:
            self.iterator = self._iterator(passes)

    def next(self):
        """The next per-replica batch (call inside the ``tf.function``)."""
        if self.on_tpu:
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
        plan: a :class:`~recipes.common.batching.BatchPlan`.
        jit_compile: bool, XLA-compile each pass (tf_lamb's optimizers compile their own
            update; Keras' do not).
        labels_per_example: int, the labels ``loss_sum`` adds per example (a language
            model's time steps): the loss is divided by ``loss_denominator``, the global
            batch times this.
    """

    def __init__(self, strategy, model, optimizer, task, plan, jit_compile=False,
                 labels_per_example=1):
        self.strategy = strategy
        self.model = model
        self.optimizer = optimizer
        self.task = task
        self.plan = plan
        self.loss_denominator = plan.global_batch_size * labels_per_example
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
            loss = loss_sum / self.loss_denominator
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
