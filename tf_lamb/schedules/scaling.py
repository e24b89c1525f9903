"""Rules that carry a learning rate tuned at one global batch size to another."""

import math

from tf_lamb import _args


def _batch_ratio(base_learning_rate, base_batch_size, batch_size):
    _args.check_real(
        "base_learning_rate", base_learning_rate, 0.0, math.inf, low_open=True
    )
    _args.check_real("base_batch_size", base_batch_size, 0.0, math.inf, low_open=True)
    _args.check_real("batch_size", batch_size, 0.0, math.inf, low_open=True)
    return batch_size / base_batch_size


def sqrt_scaling(base_learning_rate, base_batch_size, batch_size):
    """Square-root scaling: a batch `k` times larger gets a learning rate `sqrt(k)` times larger.

    .. code-block:: python

        def sqrt_scaling(base_learning_rate, base_batch_size, batch_size):
            return base_learning_rate * (batch_size / base_batch_size) ** 0.5

    It keeps the variance of the update roughly constant, and is the rule LAMB and LEGW use
    (with LEGW it needs warmup epochs scaled by `k` too: see `tf_lamb.schedules.LEGW`).

    Args:
        base_learning_rate: float > 0, the learning rate tuned at `base_batch_size`.
        base_batch_size: number > 0, the global batch size (all replicas together) it was
            tuned at.
        batch_size: number > 0, the global batch size to train at.

    Returns:
        The scaled learning rate, a Python float.

    Raises:
        ValueError: an argument is not a positive number; the message names it.

    References:
        - You et al., "Large-Batch Training for LSTM and Beyond" (arXiv 1901.08256): Sqrt
          Scaling with LEGW.
        - You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76
          minutes" (arXiv 1904.00962): the untuned LAMB rules, e.g. ResNet-50
          `0.04 * sqrt(B / 32768)` (as commonly quoted; not checked against the paper here).
    """
    ratio = _batch_ratio(base_learning_rate, base_batch_size, batch_size)
    return float(base_learning_rate) * math.sqrt(ratio)


def linear_scaling(base_learning_rate, base_batch_size, batch_size):
    """Linear scaling: a batch `k` times larger gets a learning rate `k` times larger.

    .. code-block:: python

        def linear_scaling(base_learning_rate, base_batch_size, batch_size):
            return base_learning_rate * batch_size / base_batch_size

    Goyal et al.'s rule for momentum SGD on ImageNet; pair it with their gradual warmup
    (`tf_lamb.schedules.GoyalStepDecay`).

    Args:
        base_learning_rate: float > 0, the learning rate tuned at `base_batch_size`
            (Goyal et al.: 0.1 at 256).
        base_batch_size: number > 0, the global batch size it was tuned at.
        batch_size: number > 0, the global batch size to train at.

    Returns:
        The scaled learning rate, a Python float.

    Raises:
        ValueError: an argument is not a positive number; the message names it.

    References:
        - Goyal et al., "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour"
          (arXiv 1706.02677), Sec. 2.1, the Linear Scaling Rule.
    """
    ratio = _batch_ratio(base_learning_rate, base_batch_size, batch_size)
    return float(base_learning_rate) * ratio


#: The batch-size scaling rules by name, as `LEGW.from_base(scaling=...)` takes them.
SCALING_RULES = {"sqrt": sqrt_scaling, "linear": linear_scaling}
