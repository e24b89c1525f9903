"""LANS: LAMB with per-layer gradient normalization and Nesterov momentum (Zheng et al. 2020)."""

import math

import keras
from keras import ops

from tf_lamb import _args
from tf_lamb.optimizers import layerwise
from tf_lamb.optimizers.lamb import moment_estimate, update_moments
from tf_lamb.optimizers.terms import AdamRatio, Direction, compute_dtype


@keras.saving.register_keras_serializable(package="tf_lamb")
@layerwise.with_layerwise_args
class LANS(layerwise.LayerwiseOptimizer):
    """LAMB with a normalized gradient and a Nesterov-style two-term update.

    For each layer ``w`` with gradient ``g`` at step ``t = iterations + 1``::

        g = g / (||g|| + epsilon)                        (normalize_grad=True)
        g = g + wd * w                                   (weight_decay_mode="l2" only)
        m = beta_1 * m + (1 - beta_1) * g;  v = beta_2 * v + (1 - beta_2) * g**2
        d = sqrt(v / (1 - beta_2**t)) + epsilon
        r = m / (1 - beta_1**t) / d + wd * w;  c = g / d + wd * w   (wd * w: "inside" only)
        w = w - lr * (beta_1 * phi(||w||) / ||r|| * r + (1 - beta_1) * phi(||w||) / ||c|| * c)

    Both terms are taken at the same ``w``, as in the authors' fused kernel (MXNet's Python
    version updates ``w`` between them). Pair it with
    :class:`tf_lamb.schedules.WarmupConstantDecay`, the paper's schedule.

    Args:
        learning_rate: float >= 0, a ``LearningRateSchedule`` or a callable. Defaults to 1e-3.
        beta_1: float in [0, 1). Defaults to 0.9.
        beta_2: float in [0, 1). Defaults to 0.999.
        epsilon: float > 0, in the gradient normalization and added to ``sqrt(v_hat)``.
            Defaults to 1e-6.
        weight_decay: float >= 0. Defaults to 0.01 (the authors' kernel).
        normalize_grad: bool, divide each layer's gradient by its norm. Defaults to True.
        weight_decay_mode: ``"inside"`` (default; both terms), ``"decoupled"`` (as in
            :class:`tf_lamb.LAMB`) or ``"l2"``: ``wd * w`` added to the normalized gradient,
            before the moments, as the authors' kernel does with ``adam_w_mode=False``.
        bias_correction: bool. Defaults to True.
        {{layerwise_args}}

    Slots: ``m`` and ``v``, each of the variable's shape and dtype; ``layer_statistics``,
    float32 (layers, 5): ``||w||``, then ``||r||``, ``||c||`` and the two trust ratios.

    Raises:
        ValueError: an argument is outside its range; the message names it.

    References:
        - Zheng et al., "Accelerated Large Batch Optimization of BERT Pretraining in 54
          minutes" (arXiv 2006.13484).
        - The authors' kernel: NVIDIA/apex PR #1362 (``multi_tensor_lans.cu``) and
          dmlc/gluon-nlp ``fused_lans.py``.
    """

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-6,
        weight_decay=0.01,
        normalize_grad=True,
        weight_decay_mode="inside",
        bias_correction=True,
        exclude_from_weight_decay=None,
        exclude_from_layer_adaptation=None,
        weight_norm_bounds=(0.0, None),
        max_trust_ratio=None,
        name="lans",
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
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.normalize_grad = _args.check_bool("normalize_grad", normalize_grad)
        self.weight_decay_mode = weight_decay_mode
        self.bias_correction = _args.check_bool("bias_correction", bias_correction)

    num_directions = 2

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(
            var_list, ["m", "v"]
        )

    def _slots(self, index):
        return self._momentums[index], self._velocities[index]

    def _prepare_gradient(self, step, g):
        if not self.normalize_grad:
            return g
        # A scalar reciprocal times g, not g divided by a norm: XLA recomputes a product in
        # each of g's consumers but stores a quotient, a full-size temporary.
        return g * ops.reciprocal(ops.cast(step.norm(g), g.dtype) + self.epsilon)

    def _directions(self, step, layer, g):
        m, v = update_moments(self, *layer.slots, g, self.beta_1, self.beta_2)
        t = step.t(compute_dtype(layer.variable.dtype))
        m_hat = moment_estimate(m, g, self.beta_1, t, self.bias_correction, False)
        v_hat = moment_estimate(v, None, self.beta_2, t, self.bias_correction, False)
        return [
            Direction(AdamRatio(m_hat, v_hat, self.epsilon), coefficient=self.beta_1),
            Direction(AdamRatio(g, v_hat, self.epsilon), coefficient=1.0 - self.beta_1),
        ]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "beta_1": self.beta_1,
                "beta_2": self.beta_2,
                "epsilon": self.epsilon,
                "normalize_grad": self.normalize_grad,
                "weight_decay_mode": self.weight_decay_mode,
                "bias_correction": self.bias_correction,
            }
        )
        return config
