"""LAMB: layer-wise adaptive moments for batch training (You et al. 2020, Algorithm 2)."""

import math

import keras
from keras import ops

from tf_lamb import _args
from tf_lamb.optimizers import layerwise
from tf_lamb.optimizers.terms import AdamRatio, Direction, as_compute, compute_dtype

NESTEROV_VARIANTS = (None, "n-lamb", "nn-lamb")


@keras.saving.register_keras_serializable(package="tf_lamb")
@layerwise.with_layerwise_args
class LAMB(layerwise.LayerwiseOptimizer):
    """Adam's direction, with each layer's step scaled by its trust ratio.

    For each layer ``w`` (one variable tensor) with gradient ``g`` at step ``t = iterations + 1``::

        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g**2
        m_hat = m / (1 - beta_1**t);  v_hat = v / (1 - beta_2**t)
        u = m_hat / (sqrt(v_hat) + epsilon) + weight_decay * w
        w = w - lr * phi(||w||) / ||u|| * u            (ratio 1 where a norm is 0)

    It is a drop-in for ``tensorflow_addons.optimizers.LAMB``: the same argument names,
    defaults and exclusion rules (the layer-adaptation list falls back to the weight-decay
    list), with weight decay inside the trust ratio. ``keras.optimizers.Lamb`` instead decays
    outside it; ``weight_decay_mode="decoupled"`` reproduces that. Known differences from
    tfa: ``exclude_from_layer_adaptation=[]`` adapts every layer (tfa treated an empty list
    as not given and fell back on the weight-decay list); ``epsilon=0`` raises (tfa replaced
    it by 1e-7); the default ``name`` is ``"lamb"`` (tfa: ``"LAMB"``).

    Args:
        learning_rate: float >= 0, a ``keras.optimizers.schedules.LearningRateSchedule`` or a
            callable taking no argument. Defaults to 1e-3 (tfa).
        beta_1: float in [0, 1), decay of the first moment. Defaults to 0.9 (paper).
        beta_2: float in [0, 1), decay of the second moment. Defaults to 0.999 (paper).
        epsilon: float > 0 added to ``sqrt(v_hat)``. Defaults to 1e-6 (paper, tfa; Keras'
            ``Lamb`` uses 1e-7).
        weight_decay: float >= 0. Defaults to 0 (tfa). ``weight_decay_rate`` is an alias.
        weight_decay_mode: ``"inside"`` (paper, default), ``"decoupled"`` (Keras ``Lamb``,
            AdamW-style, applied before the trust ratio is taken) or ``"l2"`` (added to the
            gradient before the moments).
        bias_correction: bool, divide the moments by ``1 - beta**t``. Defaults to True
            (paper v5, tfa; Google's ALBERT code has none).
        nesterov: ``None`` (LAMB), ``"n-lamb"`` (Nadam-style Nesterov momentum on the first
            moment, ``m_hat = beta_1 m / (1 - beta_1**(t+1)) + (1 - beta_1) g / (1 - beta_1**t)``)
            or ``"nn-lamb"`` (also on the second moment). LAMB paper appendix; its settings
            are beta_1 0.975, beta_2 0.999, epsilon 1e-8. The formula is the Nadam form as
            commonly quoted: the appendix text could not be checked here.
        {{layerwise_args}}

    Slots: ``m`` and ``v``, each of the variable's shape and dtype; and ``layer_statistics``,
    float32 of shape (layers, 3): the last step's ``||w||``, ``||u||`` and trust ratio per
    layer (:meth:`layer_statistics`, :class:`tf_lamb.callbacks.TrustRatioMonitor`).

    Raises:
        ValueError: an argument is outside its range; the message names it.

    References:
        - You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76
          minutes", ICLR 2020 (arXiv 1904.00962), Algorithm 2 and Sec. 3.1.
        - google-research/bert and google-research/albert ``lamb_optimizer.py`` (authors).
    """

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-6,
        weight_decay=0.0,
        exclude_from_weight_decay=None,
        exclude_from_layer_adaptation=None,
        weight_decay_mode="inside",
        bias_correction=True,
        nesterov=None,
        weight_norm_bounds=(0.0, None),
        max_trust_ratio=None,
        name="lamb",
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
        beta_1 = _args.check_real("beta_1", beta_1, 0.0, 1.0, high_open=True)
        beta_2 = _args.check_real("beta_2", beta_2, 0.0, 1.0, high_open=True)
        epsilon = _args.check_real("epsilon", epsilon, 0.0, math.inf, low_open=True)
        weight_decay_mode = _args.check_choice(
            "weight_decay_mode", weight_decay_mode, layerwise.WEIGHT_DECAY_MODES
        )
        nesterov = _args.check_choice("nesterov", nesterov, NESTEROV_VARIANTS)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.weight_decay_mode = weight_decay_mode
        self.bias_correction = _args.check_bool("bias_correction", bias_correction)
        self.nesterov = nesterov

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(
            var_list, ["m", "v"]
        )

    def _slots(self, index):
        return self._momentums[index], self._velocities[index]

    def _directions(self, step, layer, g):
        m, v = update_moments(self, *layer.slots, g, self.beta_1, self.beta_2)
        t = step.t(compute_dtype(layer.variable.dtype))
        m_hat = moment_estimate(m, g, self.beta_1, t, self.bias_correction, self.nesterov)
        v_hat = moment_estimate(
            v, ops.square(g), self.beta_2, t, self.bias_correction, self.nesterov == "nn-lamb"
        )
        return [Direction(AdamRatio(m_hat, v_hat, self.epsilon))]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "beta_1": self.beta_1,
                "beta_2": self.beta_2,
                "epsilon": self.epsilon,
                "weight_decay_mode": self.weight_decay_mode,
                "bias_correction": self.bias_correction,
                "nesterov": self.nesterov,
            }
        )
        return config


def update_moments(optimizer, m, v, g, beta_1, beta_2):
    """Adam's moments from ``g`` (a tensor of the layer's compute dtype): ``m <- beta_1 m +
    (1 - beta_1) g`` and ``v <- beta_2 v + (1 - beta_2) g**2``, stored in their slots by
    ``optimizer``; returns the stored values, read back as compute-dtype tensors.

    ``beta * m + (1 - beta) * g`` rather than ``m + (g - m) * (1 - beta)``: the latter
    cancels when ``beta`` is small (exact sign SGD at ``beta = 0`` needs ``m = g``).
    """
    optimizer._store(m, beta_1 * as_compute(m) + (1.0 - beta_1) * g)
    optimizer._store(v, beta_2 * as_compute(v) + (1.0 - beta_2) * ops.square(g))
    return as_compute(m), as_compute(v)


def moment_estimate(moment, observation, beta, t, bias_correction, nesterov):
    """The (bias-corrected, optionally Nesterov) estimate of an updated moment.

    Args:
        moment: the moment after this step's update (``m_t`` or ``v_t``).
        observation: this step's ``g`` (first moment) or ``g**2`` (second moment).
        beta: Python float, the moment's decay.
        t: the 1-based step as a float tensor.
        bias_correction: divide by ``1 - beta**t`` (Adam).
        nesterov: truthy for the Nadam look-ahead
            ``beta * moment / (1 - beta**(t+1)) + (1 - beta) * observation / (1 - beta**t)``.

    Returns:
        A tensor of the moment's shape.
    """
    # Each division is by a scalar, written as a product with its reciprocal: XLA recomputes
    # a product wherever it is used, but stores a quotient as a full-size temporary.
    if not nesterov:
        return moment * (1.0 / one_minus_power(beta, t)) if bias_correction else moment
    if not bias_correction:
        return beta * moment + (1.0 - beta) * observation
    return moment * (beta / one_minus_power(beta, t + 1.0)) + observation * (
        (1.0 - beta) / one_minus_power(beta, t)
    )


def one_minus_power(beta, t):
    """``1 - beta**t`` computed as ``-expm1(t * log(beta))``.

    In float32, ``1 - 0.999**t`` loses about 1e-5 of relative precision at small ``t``; this
    form keeps float32's full precision. ``beta`` is a Python float in [0, 1), ``t`` a float
    tensor.
    """
    if beta == 0.0:
        return 1.0
    return -ops.expm1(t * math.log(beta))

