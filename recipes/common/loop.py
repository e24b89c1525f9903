"""A study's training run: epochs of the recipes' one optimizer step, from arrays in memory.

The step is :class:`~recipes.common.training.StepRunner` on TensorFlow (any
``tf.distribute`` strategy; here the default one, one device) and
:class:`~recipes.common.jax_training.JaxStepRunner` on JAX (``keras.distribution``, data
parallel over every device). Two drivers call it, because two kinds of run need different
things around the same step:

- :func:`train_epochs` (here): a study's short runs, many per process: epochs over arrays held in
  memory, an evaluation after each, a stop when the loss diverges; nothing written.
- :func:`recipes.common.driver.run_steps`: one long run from files: logs, TensorBoard,
  checkpoints, resumption after a kill, held-out evaluation every N steps (TensorFlow).

Recipes train with their own step rather than ``model.fit`` (exact control of the global
batch; ``fit`` does not run under every ``tf.distribute`` strategy). The functions here pick
the backend's step from ``keras.backend.backend()``: TensorFlow or JAX.
"""

import math

import keras
import tqdm
from keras import ops

from . import batching


def _jax():
    """True on JAX, False on TensorFlow.

    Raises:
        ValueError: another backend (PyTorch): the studies have no step for it.
    """
    backend = keras.backend.backend()
    if backend not in ("tensorflow", "jax"):
        raise ValueError(f"The studies run on the tensorflow and jax backends; "
                         f"KERAS_BACKEND={backend} is not supported.")
    return backend == "jax"


def classification_sums(logits, labels):
    """``(loss_sum, metrics)`` of logits ``(..., classes)`` against integer labels ``(...)``,
    one per example ``(n,)`` or one per time step ``(n, steps)``: the summed softmax
    cross-entropy of every label (float32; the step divides it by the labels of the global
    batch, as Keras' mean loss does), and as float32 sums ``correct`` (top-1 over every
    label), ``labels`` and ``examples``. In ``keras.ops``: every backend."""
    losses = ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    correct = ops.equal(ops.argmax(logits, -1), ops.cast(labels, "int32"))
    return ops.sum(losses), {
        "correct": ops.sum(ops.cast(correct, "float32")),
        "labels": ops.cast(ops.size(labels), "float32"),
        "examples": ops.cast(ops.shape(labels)[0], "float32"),
    }


def classification_task(model, batch, training):
    """:func:`classification_sums` of ``model`` on a batch ``(x, y)``: the task of the
    TensorFlow step (:class:`~recipes.common.training.StepRunner`)."""
    images, labels = batch
    return classification_sums(model(images, training=training), labels)


def make_runner(model, optimizer, global_batch_size, labels_per_example=1, jit_compile=False):
    """The step of a study's run, with :func:`classification_task`: on TensorFlow a
    :class:`~recipes.common.training.StepRunner` on the default strategy (one device), the
    whole global batch in one pass; on JAX a
    :class:`~recipes.common.jax_training.JaxStepRunner` (the step is always compiled there),
    under the distribution :func:`~recipes.common.jax_training.use_all_devices` set.

    Args:
        model: a built ``keras.Model`` returning logits.
        optimizer: a ``keras.optimizers.Optimizer``; its learning rate may be a schedule, which
            Keras evaluates at ``optimizer.iterations`` (0 on the first step).
        global_batch_size: int, examples per optimizer step.
        labels_per_example: int, labels per example (a language model's time steps).
        jit_compile: bool, XLA-compile the forward and backward pass (TensorFlow).
    """
    plan = batching.plan_batch(global_batch_size, 1, global_batch_size)
    if _jax():
        from . import jax_training

        return jax_training.JaxStepRunner(model, optimizer, classification_task, plan,
                                          labels_per_example)
    import tensorflow as tf

    from . import training

    return training.StepRunner(tf.distribute.get_strategy(), model, optimizer,
                               classification_task, plan, jit_compile=jit_compile,
                               labels_per_example=labels_per_example)


def array_feed(x, y, global_batch_size, steps_per_epoch, seed):
    """The feed of a study's run: global batches of ``(x, y)``, reshuffled at each epoch, the
    last partial batch dropped. On TensorFlow a :class:`~recipes.common.training.DataFeed`
    over ``fashion_mnist.train_dataset`` on the default strategy; on JAX a
    :class:`~recipes.common.jax_training.ArrayFeed` (NumPy's shuffle, so another order).

    Args:
        x: array ``(n, ...)``; y: int array ``(n,)`` or ``(n, steps)``.
        global_batch_size: int, examples per batch.
        steps_per_epoch: int, the batches the schedule counts per epoch.
        seed: int, the shuffle seed.

    Raises:
        RuntimeError: an epoch does not hold ``steps_per_epoch`` batches (the schedule was
            given the wrong step count).
    """
    batches = len(x) // global_batch_size
    if batches != steps_per_epoch:
        raise RuntimeError(f"An epoch holds {batches} steps, but the schedule was built for "
                           f"{steps_per_epoch} steps per epoch.")
    if _jax():
        from . import jax_training

        return jax_training.ArrayFeed(x, y, global_batch_size, seed)
    import tensorflow as tf

    from . import fashion_mnist, training

    dataset = fashion_mnist.train_dataset(x, y, global_batch_size, seed=seed)
    return training.DataFeed(tf.distribute.get_strategy(), lambda *_: dataset.repeat(),
                             global_batch_size, save_iterator=False)


def make_evaluate(model, batch_size=10000):
    """Returns ``evaluate(x, y) -> (accuracy, loss)`` for a logits ``model``: the recipes'
    held-out evaluation over arrays in memory, with :func:`classification_task` (on
    TensorFlow :class:`recipes.common.tf_driver.Evaluator` on the default strategy; on JAX
    :func:`recipes.common.jax_training.make_evaluate`).

    Build it once per model and call it every epoch: its forward pass is compiled once and
    kept across calls (a new function per call would retrace the model at every evaluation).

    Args:
        model: maps ``x`` to logits whose last axis is the class.
        batch_size: examples per forward pass.

    The returned ``evaluate(x, y)`` takes numpy inputs ``x`` ``(n, ...)`` and int labels ``y``,
    ``(n,)`` for one label per example or ``(n, steps)`` for one per time step (a language
    model's next tokens), every label counting once, and returns the top-1 accuracy and mean
    cross-entropy over all labels as Python floats; the loss is NaN when the logits are not
    finite.
    """
    if _jax():
        from . import jax_training

        evaluate_sums = jax_training.make_evaluate(model, classification_task, batch_size)

        def evaluate(x, y):
            sums = evaluate_sums(x, y)
            return sums["correct"] / sums["labels"], sums["loss"] / sums["labels"]

        return evaluate
    import tensorflow as tf

    from . import tf_driver

    arrays = {}
    evaluator = tf_driver.Evaluator(
        tf.distribute.get_strategy(), model, classification_task,
        lambda batch, *_: tf.data.Dataset.from_tensor_slices((arrays["x"], arrays["y"]))
        .batch(batch), batch_size)

    def evaluate(x, y):
        arrays.update(x=x, y=y)
        sums = evaluator()
        return sums["correct"] / sums["labels"], sums["loss"] / sums["labels"]

    return evaluate


def train_epochs(runner, feed, epochs, steps_per_epoch, description="", on_epoch_end=None,
                 progress=True):
    """Runs ``epochs`` epochs of ``steps_per_epoch`` optimizer steps of ``runner`` on
    ``feed``, with a tqdm progress bar.

    Stops early, and says so, when an epoch's mean loss is not finite (a diverged run is not
    worth finishing; its accuracy is then measured as it stands).

    Args:
        runner: a :class:`~recipes.common.training.StepRunner` (:func:`make_runner`).
        feed: its :class:`~recipes.common.training.DataFeed` (:func:`array_feed`).
        epochs: int.
        steps_per_epoch: int, optimizer steps per epoch.
        description: the progress bar's label.
        on_epoch_end: optional ``f(epoch) -> dict`` of values to show on the bar (e.g. test
            accuracy); ``epoch`` counts from 1.
        progress: bool, show the bar.

    Returns:
        A dict: ``train_loss`` (the mean loss of each epoch run), ``steps`` (steps taken),
        ``diverged`` (bool), ``epoch_logs`` (what ``on_epoch_end`` returned, per epoch).
    """
    history = {"train_loss": [], "steps": 0, "diverged": False, "epoch_logs": []}
    with tqdm.tqdm(
        total=epochs * steps_per_epoch,
        desc=description,
        unit="step",
        disable=not progress,
        dynamic_ncols=True,
        leave=True,
    ) as bar:
        for epoch in range(1, epochs + 1):
            losses = []
            for _ in range(steps_per_epoch):
                losses.append(runner.train_step(feed)["loss"] / runner.loss_denominator)
                bar.update(1)
            history["steps"] += len(losses)
            mean_loss = float(ops.mean(ops.stack(losses)))
            history["train_loss"].append(mean_loss)
            logs = dict(on_epoch_end(epoch)) if on_epoch_end else {}
            history["epoch_logs"].append(logs)
            bar.set_postfix(epoch=epoch, loss=f"{mean_loss:.4f}", **logs)
            if not math.isfinite(mean_loss):
                history["diverged"] = True
                bar.write(f"{description}: loss {mean_loss} at epoch {epoch}; run stopped.")
                break
    return history
