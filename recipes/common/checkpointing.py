"""Checkpoints that resume a run exactly: model, optimizer (step, slots, learning rate) and,
under ``--resume_data=iterator``, the data iterator's position, through
``tf.train.CheckpointManager`` (otherwise the feed skips to the step's position, see
:class:`recipes.common.training.DataFeed`).

A checkpoint is complete or absent: TensorFlow writes its files under temporary names and
renames them, and the manager records a checkpoint in its ``checkpoint`` index file only after
that, so a run killed while saving resumes from the previous one. Under
``MultiWorkerMirroredStrategy`` every worker must take part in a save; the chief writes to the
run's directory, every other worker to ``<directory>/.workers/worker_<i>``, which it keeps: the
model and optimizer are the same on every worker, but each host reads its own files, so each
resumes its own data position (iterator) from its own checkpoint of the chief's step.
"""

import os

import tensorflow as tf

from .distribute import host_index


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
        self.hosts, index = host_index(strategy)
        self.is_chief = index == 0
        self.directory = directory
        if not self.is_chief:
            resolver = strategy.cluster_resolver
            directory = os.path.join(
                directory, ".workers", f"{resolver.task_type}_{resolver.task_id}"
            )
        self.worker_directory = directory
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
        """Restores the chief's newest checkpoint, if any; returns its path or None.

        A non-chief worker restores its own checkpoint of the same step (its data position);
        when it has none (e.g. a replaced host) it takes the chief's, whose model and optimizer
        are the same but whose data position is the chief's, and warns.
        """
        path = self.latest
        if path and self.worker_directory != self.directory:
            own = os.path.join(self.worker_directory, os.path.basename(path))
            if tf.io.gfile.exists(own + ".index"):
                path = own
            else:
                print(f"warning: no {own}; this worker resumes the chief's data position")
        if path:
            self.checkpoint.restore(path).assert_existing_objects_matched()
        return path

    def saved(self, step):
        """Whether this worker's newest checkpoint is the one numbered ``step`` (the same
        answer on every worker, unlike :attr:`latest` while the chief is saving)."""
        latest = self.manager.latest_checkpoint
        return latest is not None and latest.endswith(f"-{step}")

    def save(self, step):
        """Writes a checkpoint numbered ``step`` (every worker must call it); returns the path
        this worker wrote."""
        return self.manager.save(checkpoint_number=step)


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


def latest_checkpoint(directory):
    """The newest complete checkpoint in ``directory`` (a file prefix), or None."""
    return tf.train.latest_checkpoint(directory) if tf.io.gfile.isdir(directory) else None


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
