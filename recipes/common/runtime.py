"""Process set-up shared by the recipes: seeding, checking up front that what a recipe writes
its results with is installed, and its files: local ones with or without TensorFlow, ``gs://``
ones through TensorFlow's file systems (or, without it, ``etils.epath``'s, which need gcsfs;
globs of ``gs://`` paths need TensorFlow)."""

import glob
import sys

import keras

from tf_lamb.callbacks import SummariesNotAvailableError, check_summaries

#: How to install what the recipes write with (the ``recipes`` extra brings TensorBoard and
#: matplotlib).
RECIPES_INSTALL = ("`pip install tf-lamb[recipes]` (or `pip install tensorboard matplotlib`); "
                   "on JAX without TensorFlow, `pip install tf-lamb[recipes,jax]`")


class WriterNotInstalledError(ImportError):
    """A package a recipe writes its results with (matplotlib for a study's plot) is missing."""


def check_writers(summaries=False, plots=False):
    """Checks, before a recipe's first step, that what it writes with is installed; creates
    no file.

    Args:
        summaries: bool, the run writes TensorBoard summaries (``tf.summary``: TensorFlow and
            TensorBoard, or tensorboardX; see :func:`tf_lamb.callbacks.check_summaries`).
        plots: bool, the run draws a plot (matplotlib).

    Raises:
        tf_lamb.callbacks.SummariesNotAvailableError: ``summaries`` and neither TensorFlow
            with TensorBoard nor tensorboardX is installed.
        WriterNotInstalledError: ``plots`` and matplotlib is not installed.
        Both are ``ImportError`` subclasses whose message says what to install.
    """
    if summaries:
        check_summaries(
            user="This recipe (its train/ and eval/ summaries under --output_dir)",
            install=RECIPES_INSTALL,
        )
    if plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError as error:
            raise WriterNotInstalledError(
                f"This study draws its results with matplotlib, which is not installed "
                f"({error}). Install with {RECIPES_INSTALL}."
            ) from error


#: The errors :func:`check_writers` raises, for the programs' error handlers.
WRITER_ERRORS = (SummariesNotAvailableError, WriterNotInstalledError)


def seed_everything(seed):
    """Seeds Python's ``random``, NumPy and the backend (TensorFlow's global seed) with ``seed``.

    Call it at the start of every run that must repeat: with op-level seeds (shuffles,
    initializers) it fixes every random choice of a run. It does not make float reductions
    deterministic across thread counts; on one machine with one thread setting, reruns repeat.

    Args:
        seed: int.
    """
    keras.utils.set_random_seed(seed)


def list_flags_in_help(flag_values=None):
    """Makes ``--help`` list the recipes' flags.

    absl's ``--help`` lists the key flags of the module ``sys.argv[0]`` names. For a console
    script (``tf-lamb-bert-pretrain``) that is the installed wrapper, which defines no flag,
    so ``--help`` would list none. Every flag a recipe module defined becomes a key flag of it.

    Args:
        flag_values: the ``absl.flags.FlagValues`` (default: ``absl.flags.FLAGS``).
    """
    from absl import flags

    flag_values = flags.FLAGS if flag_values is None else flag_values
    for module, defined in flag_values.flags_by_module_dict().items():
        if "recipes" in module and module != sys.argv[0]:
            for flag in defined:
                flag_values.register_key_flag_for_module(sys.argv[0], flag)


def _filesystem():
    """``etils.epath`` where it is installed (the ``jax`` extra brings it; it reaches ``gs://``
    through TensorFlow's or fsspec's file system), else ``tf.io.gfile``."""
    try:
        from etils import epath
    except ImportError:
        import tensorflow as tf

        return None, tf.io.gfile
    return epath, None


def open_file(path, mode="r"):
    """Opens a local or ``gs://`` file (text modes ``r``/``w``, or ``rb``/``wb``)."""
    epath, gfile = _filesystem()
    return gfile.GFile(path, mode) if epath is None else epath.Path(path).open(mode)


def file_exists(path):
    """Whether the local or ``gs://`` ``path`` exists."""
    epath, gfile = _filesystem()
    return gfile.exists(path) if epath is None else epath.Path(path).exists()


def make_dirs(path):
    """Creates the local or ``gs://`` folder ``path`` and its parents, if missing."""
    epath, gfile = _filesystem()
    if epath is None:
        gfile.makedirs(path)
    else:
        epath.Path(path).mkdir(parents=True, exist_ok=True)


def shard_paths(output_prefix, num_shards, count, suffix=""):
    """The files a sharded writer writes ``count`` records to:
    ``{output_prefix}-{i:05d}-of-{n:05d}{suffix}``, ``n`` being ``num_shards`` capped at
    ``count`` (at least one file; the TPU ImageNet reference's names when ``suffix`` is empty).

    Raises:
        ValueError: ``num_shards`` < 1.
    """
    if num_shards < 1:
        raise ValueError(f"Argument `num_shards` must be >= 1. Received: {num_shards}")
    num_shards = max(1, min(num_shards, count))
    return [f"{output_prefix}-{i:05d}-of-{num_shards:05d}{suffix}" for i in range(num_shards)]


def list_files(pattern, flag="--train_files"):
    """The sorted files matching the comma-separated glob(s) ``pattern``: through
    ``tf.io.gfile.glob`` where TensorFlow is imported (the TensorFlow backend, tf.data input)
    and for ``gs://`` paths, through Python's ``glob`` otherwise (a JAX run from NumPy
    shards).

    Raises:
        FileNotFoundError: nothing matches (the message names the flag and the pattern).
    """
    files = set()
    for part in filter(None, pattern.split(",")):
        if "://" in part or sys.modules.get("tensorflow") is not None:
            try:
                import tensorflow as tf
            except ImportError as error:
                raise FileNotFoundError(f"{flag}: {part}: globs of URLs go through "
                                        f"tf.io.gfile, and TensorFlow is not installed ({error}); "
                                        "give local or mounted paths.") from error
            files.update(tf.io.gfile.glob(part))
        else:
            files.update(glob.glob(part))
    if not files:
        raise FileNotFoundError(f"{flag}: no file matches {pattern!r}")
    return sorted(files)
