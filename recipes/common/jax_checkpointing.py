"""Checkpoints of a JAX run through orbax-checkpoint: the model's variables (weights,
batch-norm statistics, dropout seed states) and the optimizer's (its step, hence the learning
rate, and its slots), each array saved with its sharding, so a run laid out over many devices
or hosts saves and restores in place. The data position follows from the step (the feed skips
what the finished steps consumed, see :class:`recipes.common.jax_driver.DatasetFeed`).

Paths may be local or URLs that orbax and ``etils.epath`` read (``gs://`` through
TensorFlow's gfile or ``gcsfs``). A checkpoint is complete or absent: orbax writes each step
into a temporary folder and renames it to ``<directory>/checkpoints/<step>`` only once every
file is written, so a run killed while saving resumes from the previous one. Every host takes part in a save; each writes its own
shards.

Nothing here imports TensorFlow.
"""

import os

import jax
import orbax.checkpoint as ocp
from etils import epath

from .jax_training import variable_values as _values


def _absolute(path):
    """``path`` made absolute (orbax requires it), unless it is a URL such as ``gs://...``."""
    path = os.fspath(path)
    return path if "://" in path else os.path.abspath(path)


def _folder(directory):
    """Orbax's folder of a run's ``--output_dir``."""
    return os.path.join(_absolute(directory), "checkpoints")


def _groups(model, optimizer=None):
    """The checkpoint's items: ``weights`` (trainable), ``model_state`` (batch-norm
    statistics, dropout seed states; left out when the model has none: orbax cannot restore
    an empty list) and, with ``optimizer``, its variables."""
    groups = {"weights": model.trainable_variables}
    if model.non_trainable_variables:
        groups["model_state"] = model.non_trainable_variables
    if optimizer is not None:
        groups["optimizer"] = optimizer.variables
    return groups


def _restore(manager, step, groups):
    restored = manager.restore(step, args=ocp.args.Composite(
        **{k: ocp.args.StandardRestore(_values(v)) for k, v in groups.items()}))
    for name, variables in groups.items():
        _assign(variables, restored[name])


def _assign(variables, values):
    for variable, value in zip(variables, values):
        variable.assign(value)


class Checkpointer:
    """Saves and restores ``model`` and ``optimizer`` under ``<directory>/checkpoints``, the
    newest ``max_to_keep`` kept (the interface of
    :class:`recipes.common.checkpointing.Checkpointer`, for
    :func:`recipes.common.driver.run_steps`).

    Args:
        directory: the run's ``--output_dir``.
        model: a built ``keras.Model``.
        optimizer: its built optimizer.
        max_to_keep: int.
    """

    def __init__(self, directory, model, optimizer, max_to_keep=3):
        self.model, self.optimizer = model, optimizer
        self.hosts, self.is_chief = jax.process_count(), jax.process_index() == 0
        self.manager = ocp.CheckpointManager(
            _folder(directory), options=ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep, enable_async_checkpointing=False, create=True))

    def _path(self, step):
        return os.path.join(str(self.manager.directory), str(step))

    def restore_latest(self):
        """Restores the newest checkpoint, if any, onto the variables' devices; returns its
        path or None."""
        step = self.manager.latest_step()
        if step is None:
            return None
        _restore(self.manager, step, _groups(self.model, self.optimizer))
        return self._path(step)

    def saved(self, step):
        """Whether the newest checkpoint is the one of ``step``."""
        return self.manager.latest_step() == step

    def save(self, step):
        """Writes the checkpoint of ``step`` (every host must call it); returns its path."""
        groups = _groups(self.model, self.optimizer)
        self.manager.save(step, args=ocp.args.Composite(
            **{k: ocp.args.StandardSave(_values(v)) for k, v in groups.items()}))
        self.manager.wait_until_finished()
        return self._path(step)


def latest_checkpoint(directory):
    """The newest complete checkpoint of the run in ``directory`` (its ``--output_dir``), as
    a path ``.../checkpoints/<step>``, or None."""
    folder = epath.Path(_folder(directory))
    steps = [int(p.name) for p in folder.iterdir() if p.name.isdigit()] if folder.is_dir() else []
    return os.path.join(os.fspath(folder), str(max(steps))) if steps else None


def restore_model(model, path):
    """Loads only ``model``'s weights (trainable variables) from a checkpoint: ``path`` is a
    checkpoint (``.../checkpoints/<step>``) or a run's ``--output_dir`` (its newest): how
    phase 2 starts from phase 1, on any number of devices. Returns the checkpoint's path.

    Raises:
        FileNotFoundError: no JAX checkpoint at ``path`` (the message names it, and says that
            a TensorFlow run's checkpoint is not read here).
    """
    path = _absolute(path)
    found = path if epath.Path(path, "weights").is_dir() else latest_checkpoint(path)
    if not found or not epath.Path(found, "weights").is_dir():
        raise FileNotFoundError(
            f"--init_checkpoint: no JAX checkpoint at {path} (a run on the JAX backend writes "
            "them to <output_dir>/checkpoints/<step>; TensorFlow's are not read here)")
    parent, step = found.rstrip("/").rsplit("/", 1)
    _restore(ocp.CheckpointManager(parent), int(step), {"weights": model.trainable_variables})
    return found
