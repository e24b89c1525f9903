"""Process set-up shared by the recipes: seeding, and checking up front that what a recipe
writes its results with is installed."""

import sys

import keras

from tf_lamb.callbacks import SummariesNotAvailableError, check_summaries

#: How to install what the recipes write with (the ``recipes`` extra brings TensorBoard and
#: matplotlib).
RECIPES_INSTALL = "`pip install tf-lamb[recipes]` (or `pip install tensorboard matplotlib`)"


class WriterNotInstalledError(ImportError):
    """A package a recipe writes its results with (matplotlib for a study's plot) is missing."""


def check_writers(summaries=False, plots=False):
    """Checks, before a recipe's first step, that what it writes with is installed; creates
    no file.

    Args:
        summaries: bool, the run writes TensorBoard summaries (``tf.summary``: TensorFlow and
            TensorBoard; see :func:`tf_lamb.callbacks.check_summaries`).
        plots: bool, the run draws a plot (matplotlib).

    Raises:
        tf_lamb.callbacks.SummariesNotAvailableError: ``summaries`` and TensorBoard (or
            TensorFlow) is not installed.
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
