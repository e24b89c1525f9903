"""Checkpoints that resume a run exactly: model, optimizer (step, slots, learning rate) and the
data iterator's position, through ``tf.train.CheckpointManager``.

A checkpoint is complete or absent: TensorFlow writes its files under temporary names and
renames them, and the manager records a checkpoint in its ``checkpoint`` index file only after
that, so a run killed while saving resumes from the previous one. Under
``MultiWorkerMirroredStrategy`` every worker must take part in a save; only the chief writes to
the real directory, the others to a scratch directory that is then deleted.
"""

import os
import shutil

import tensorflow as tf


def _is_chief(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


class Checkpointer:
    """Saves and restores ``objects`` (trackables, e.g. model, optimizer, iterator), and any of
    their variables that TensorFlow's tracking does not reach (:func:`_untracked_variables`).

    Args:
        strategy: the run's ``tf.distribute.Strategy``.
        directory: where checkpoints go (created).
        max_to_keep: int, the newest checkpoints kept.
        **objects: the trackables to save, by name.
    """

    def __init__(self, strategy, directory, max_to_keep=3, **objects):
        self.is_chief = _is_chief(strategy)
        self.directory = directory
        if not self.is_chief:
            resolver = strategy.cluster_resolver
            directory = os.path.join(
                directory, ".workers", f"{resolver.task_type}_{resolver.task_id}"
            )
        self._scratch = None if self.is_chief else directory
        untracked = _untracked_variables(tf.train.Checkpoint(**objects), objects)
        if untracked:
            objects = dict(objects, untracked_variables=untracked)
        self.checkpoint = tf.train.Checkpoint(**objects)
        self.manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep)

    @property
    def latest(self):
        """The newest complete checkpoint's path in the chief's directory, or None."""
        return tf.train.latest_checkpoint(self.directory)

    def restore_latest(self):
        """Restores the newest checkpoint, if any; returns its path or None."""
        path = self.latest
        if path:
            self.checkpoint.restore(path).assert_existing_objects_matched()
        return path

    def save(self, step):
        """Writes a checkpoint numbered ``step``; returns the chief's path."""
        path = self.manager.save(checkpoint_number=step)
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)
        return path


def _untracked_variables(checkpoint, objects):
    """The variables of ``objects`` (models, optimizers) that ``checkpoint`` would miss, by
    position: e.g. Keras' random-seed states (dropout), held by objects TensorFlow does not
    track. Saved alongside, so a resumed run continues their random streams too.

    Returns:
        A dict ``{"<name>_<index>": tf.Variable}``, empty when everything is tracked.
    """
    tracked = {id(o) for o in tf.train.TrackableView(checkpoint).descendants()}
    found = {}
    for name, obj in objects.items():
        variables = getattr(obj, "variables", [])
        for index, variable in enumerate(variables if isinstance(variables, list) else []):
            value = getattr(variable, "value", variable)
            if id(variable) not in tracked and id(value) not in tracked:
                found[f"{name}_{index}"] = value
    return found


def restore_model(model, path):
    """Loads only ``model``'s weights from the checkpoint ``path`` (a file prefix or a
    directory, whose newest checkpoint is used): how phase 2 starts from phase 1.

    Raises:
        FileNotFoundError: no checkpoint at ``path`` (the message names it).
    """
    if tf.io.gfile.isdir(path):
        found = tf.train.latest_checkpoint(path)
        if not found:
            raise FileNotFoundError(f"--init_checkpoint: no checkpoint in {path}")
        path = found
    elif not tf.io.gfile.exists(path + ".index"):
        raise FileNotFoundError(f"--init_checkpoint: no checkpoint at {path}")
    tf.train.Checkpoint(model=model).restore(path).expect_partial().assert_existing_objects_matched()
    return path
