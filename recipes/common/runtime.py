"""Process set-up shared by the recipes."""

import keras


def seed_everything(seed):
    """Seeds Python's ``random``, NumPy and the backend (TensorFlow's global seed) with ``seed``.

    Call it at the start of every run that must repeat: with op-level seeds (shuffles,
    initializers) it fixes every random choice of a run. It does not make float reductions
    deterministic across thread counts; on one machine with one thread setting, reruns repeat.

    Args:
        seed: int.
    """
    keras.utils.set_random_seed(seed)
