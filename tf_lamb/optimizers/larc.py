"""LARC: layer-wise adaptive rate clipping around momentum SGD (NVIDIA apex's ``LARC``)."""

import math

import keras
from keras import ops

from tf_lamb import _args
from tf_lamb.optimizers import layerwise
from tf_lamb.optimizers.lars import momentum_step
from tf_lamb.optimizers.terms import Direction, compute_dtype


@keras.saving.register_keras_serializable(package="tf_lamb")
@layerwise.with_layerwise_args
class LARC(layerwise.LayerwiseOptimizer):
    """Momentum SGD whose per-layer rate is LARS' local rate, clipped at the global one.

    For each layer ``w`` with gradient ``g`` (apex's ``LARC`` wrapped around
    ``torch.optim.SGD``)::

        local = eta * phi(||w||) / (||g|| + wd * ||w|| + epsilon)   (1 where ||w|| or ||g|| is 0)
        ratio = min(local / lr, 1)       (clip=True: the layer's rate lr * ratio is at most lr)
        ratio = local                    (clip=False: the rate is lr * local, as in LARS)
        b = momentum * b + ratio * (g + wd * w)
        w = w - lr * b          (nesterov: w - lr * (ratio * (g + wd * w) + momentum * b))

    Unlike classic :class:`tf_lamb.LARS` the learning rate stays outside the momentum buffer,
    as in PyTorch's SGD, so a schedule changes the step at once rather than through the
    buffer; with a constant learning rate and ``clip=False`` the two are the same.

    Known difference from apex: where a layer's gradient is all zeros apex leaves it as it is,
    without weight decay; here the ratio is 1 and the decay ``wd * w`` is still applied, as in
    every other tf_lamb optimizer.

    Args:
        learning_rate: float >= 0, a ``LearningRateSchedule`` or a callable. Defaults to 1e-3
            (``torch.optim.SGD``).
        momentum: float in [0, 1). Defaults to 0.9 (apex's ImageNet example).
        weight_decay: float >= 0. Defaults to 0.
        trust_coefficient: float > 0, ``eta``. Defaults to 0.02 (apex).
        clip: bool; True clips the layer's rate at the learning rate, False scales it.
            Defaults to True (apex).
        epsilon: float >= 0 added to the ratio's denominator. Defaults to 1e-8 (apex).
        nesterov: bool. Defaults to False.
        {{layerwise_args}}

    Slots: ``momentum``, one of each variable's shape and dtype; ``layer_statistics``,
    float32 (layers, 3): ``||w||``, ``||g||`` and the ratio after the clip.

    Raises:
        ValueError: an argument is outside its range; the message names it.

    References:
        - You, Gitman, Ginsburg, "Large Batch Training of Convolutional Networks" (2017,
          arXiv 1708.03888).
        - NVIDIA apex, ``apex/parallel/LARC.py``.
    """

    def __init__(
        self,
        learning_rate=0.001,
        momentum=0.9,
        weight_decay=0.0,
        trust_coefficient=0.02,
        clip=True,
        epsilon=1e-8,
        nesterov=False,
        exclude_from_weight_decay=None,
        exclude_from_layer_adaptation=None,
        weight_norm_bounds=(0.0, None),
        max_trust_ratio=None,
        name="larc",
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            exclude_from_weight_decay=exclude_from_weight_decay,
            exclude_from_layer_adaptation=exclude_from_layer_adaptation,
            weight_norm_bounds=weight_norm_bounds,
            max_trust_ratio=max_trust_ratio,
            name=name,
            **kwargs,
        )
        self.momentum = _args.check_real("momentum", momentum, 0.0, 1.0, high_open=True)
        self.trust_coefficient = _args.check_real(
            "trust_coefficient", trust_coefficient, 0.0, math.inf, low_open=True
        )
        self.clip = _args.check_bool("clip", clip)
        self.epsilon = _args.check_real("epsilon", epsilon, 0.0, math.inf)
        self.nesterov = _args.check_bool("nesterov", nesterov)

    stored_directions = True  # Its direction is the decayed gradient.

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums = self.add_optimizer_variables(var_list, "momentum")

    def _slots(self, index):
        return (self._momentums[index],)

    def _directions(self, step, layer, g):
        direction = Direction(
            g, norm_of=g, epsilon=self.epsilon, trust_coefficient=self.trust_coefficient
        )
        return [direction]

    def _trust_ratio(self, index, weight_norm, norm, direction, offset, lr):
        ratio = super()._trust_ratio(index, weight_norm, norm, direction, offset, lr)
        if not self.clip or not self._adapts[index]:
            return ratio
        positive = ops.logical_and(weight_norm > 0.0, norm > 0.0)
        relative = ratio / ops.cast(lr, ratio.dtype)
        # min(relative, 1) by `where`: Keras' PyTorch `minimum` returns float64 as float32.
        clipped = ops.where(relative < 1.0, relative, ops.ones_like(relative))
        return ops.where(positive, clipped, ratio)  # The zero-norm rule: 1, not clipped.

    def _descend(self, layer, lr, terms, shrink):
        # The learning rate stays outside the buffer, as in PyTorch's SGD.
        ((ratio, u),) = terms
        scaled = ops.cast(ratio, compute_dtype(layer.variable.dtype)) * u
        self._move(layer.variable, lr * momentum_step(self, layer.slots[0], scaled))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                "trust_coefficient": self.trust_coefficient,
                "clip": self.clip,
                "epsilon": self.epsilon,
                "nesterov": self.nesterov,
            }
        )
        return config
