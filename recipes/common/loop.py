"""A small custom training loop: a compiled train step, an evaluation, and the epoch loop.

Recipes train with ``GradientTape`` + ``optimizer.apply_gradients`` rather than ``model.fit``
(exact control of the global batch; ``fit`` does not run under every ``tf.distribute``
strategy). TensorFlow backend.
"""

import math

import numpy as np
import tensorflow as tf
import tqdm


def make_train_step(model, optimizer, loss_fn, jit_compile=False):
    """Returns ``step(images, labels) -> loss``, a ``tf.function`` doing one optimizer step.

    Args:
        model: a built ``keras.Model``.
        optimizer: a ``keras.optimizers.Optimizer``; its learning rate may be a schedule, which
            Keras evaluates at ``optimizer.iterations`` (0 on the first step).
        loss_fn: ``loss_fn(labels, outputs)`` returning a scalar mean over the batch.
        jit_compile: bool, XLA-compile the step.
    """
    variables = model.trainable_variables

    @tf.function(jit_compile=jit_compile)
    def step(images, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(images, training=True))
        gradients = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(gradients, variables))
        return loss

    return step


def make_evaluate(model, batch_size=10000):
    """Returns ``evaluate(x, y) -> (accuracy, loss)`` for a logits ``model``, traced once.

    Build it once per model and call it every epoch: its forward pass is one ``tf.function``
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

    @tf.function(reduce_retracing=True)
    def logits_of(images):
        return model(images, training=False)

    def evaluate(x, y):
        correct, total_loss = 0, 0.0
        for start in range(0, len(x), batch_size):
            logits = logits_of(tf.constant(x[start : start + batch_size]))
            labels = y[start : start + batch_size]
            correct += int(np.sum(np.argmax(logits.numpy(), axis=-1) == labels))
            total_loss += float(
                tf.reduce_sum(
                    tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
                )
            )
        return correct / y.size, total_loss / y.size

    return evaluate


def train(step, dataset, epochs, steps_per_epoch, description="", on_epoch_end=None, progress=True):
    """Runs ``epochs`` passes of ``step`` over ``dataset`` with a tqdm progress bar.

    Stops early, and says so, when an epoch's mean loss is not finite (a diverged run is not
    worth finishing; its accuracy is then measured as it stands).

    Args:
        step: ``step(images, labels) -> loss``, e.g. from :func:`make_train_step`.
        dataset: iterable of batches; one iteration is one epoch.
        epochs: int.
        steps_per_epoch: int, the batches one iteration of ``dataset`` yields. Checked: a
            mismatch means the learning-rate schedule was given the wrong step count.
        description: the progress bar's label.
        on_epoch_end: optional ``f(epoch) -> dict`` of values to show on the bar (e.g. test
            accuracy); ``epoch`` counts from 1.
        progress: bool, show the bar.

    Returns:
        A dict: ``train_loss`` (the mean loss of each epoch run), ``steps`` (steps taken),
        ``diverged`` (bool), ``epoch_logs`` (what ``on_epoch_end`` returned, per epoch).

    Raises:
        RuntimeError: an epoch yielded a number of batches other than ``steps_per_epoch``.
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
            for images, labels in dataset:
                losses.append(step(images, labels))
                bar.update(1)
            if len(losses) != steps_per_epoch:
                raise RuntimeError(
                    f"Epoch {epoch} ran {len(losses)} steps, but the schedule was built for "
                    f"{steps_per_epoch} steps per epoch."
                )
            history["steps"] += len(losses)
            mean_loss = float(tf.reduce_mean(tf.stack(losses)))
            history["train_loss"].append(mean_loss)
            logs = dict(on_epoch_end(epoch)) if on_epoch_end else {}
            history["epoch_logs"].append(logs)
            bar.set_postfix(epoch=epoch, loss=f"{mean_loss:.4f}", **logs)
            if not math.isfinite(mean_loss):
                history["diverged"] = True
                bar.write(f"{description}: loss {mean_loss} at epoch {epoch}; run stopped.")
                break
    return history
