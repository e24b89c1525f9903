"""LANS: LAMB with per-layer gradient normalization and Nesterov momentum (Zheng et al. 2020)."""

import math

import keras
from keras import ops

from tf_lamb import _args
from tf_lamb.optimizers import kernels, layerwise
from tf_lamb.optimizers.lamb import bias_corrections


@keras.saving.register_keras_serializable(package="tf_lamb")
class LANS(layerwise.LayerwiseOptimizer):
    """LAMB with a normalized gradient and a Nesterov-style two-term update.

    For each layer ``w`` with gradient ``g`` at step ``t = iterations + 1``:

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
        exclude_from_weight_decay, exclude_from_layer_adaptation, weight_norm_bounds,
        max_trust_ratio, fused, jit_compile: as in :class:`tf_lamb.LAMB`.
        **kwargs: ``keras.optimizers.Optimizer`` arguments.

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

    def _update_layer(self, index, gradient, variable, slots, learning_rate, t):
        dtype = layerwise.compute_dtype(variable.dtype)
        g = layerwise.dense_gradient(gradient, dtype)
        # g is normalized by a scalar reciprocal times g, not an elementwise divide: XLA
        # recomputes a cheap product in each of g's four consumers, but it stores a divide's
        # result, a full-size temporary (measured: the embedding's, 89 MiB, on BERT-base).
        inverse_norm = 1.0
        if self.normalize_grad:
            inverse_norm = ops.reciprocal(ops.cast(self._norm(g), dtype) + self.epsilon)
        m, v = slots
        normalized = g * inverse_norm if self.normalize_grad else g
        if self.weight_decay_mode == "l2" and self._decay_rates[index]:
            # The authors' kernel (adam_w_mode=False) adds the decay to the normalized
            # gradient, before the moments; both directions then see it.
            normalized = self._decay_in_gradient(normalized, variable, index)
            g, inverse_norm = normalized, 1.0
        if self._uses_kernels(variable.dtype) and self.beta_1 and self.beta_2:
            directions = self._kernel_directions(variable, m, v, g, normalized, inverse_norm, t)
        else:
            directions = self._ops_directions(m, v, normalized, t, dtype)
        return self._apply_layerwise(
            variable, index, learning_rate, directions, mode=self.weight_decay_mode
        )

    def _ops_directions(self, m, v, g, t, dtype):
        """The two directions from the normalized gradient ``g``, in ``keras.ops``."""
        m, v = self._update_moments(m, v, g, self.beta_1, self.beta_2)
        # d = sqrt(v_hat) + eps = (sqrt(v) + eps sqrt(c_2)) / sqrt(c_2), c = 1 - beta**t: the
        # two directions m_hat / d and g / d carry their bias corrections as scalars.
        m_scale, g_scale, epsilon = self._once_per_step(
            ("lans", dtype),
            lambda: bias_corrections(
                t, self.beta_1, self.beta_2, self.epsilon, self.bias_correction
            ),
        )
        return [
            layerwise.Direction(
                lambda for_norm: layerwise.adam_direction(m, v, epsilon, for_norm),
                m_scale,
                self.beta_1,
            ),
            layerwise.Direction(
                lambda for_norm: layerwise.adam_direction(g, v, epsilon, 2 if for_norm else False),
                g_scale,
                1.0 - self.beta_1,
            ),
        ]

    def _kernel_directions(self, variable, m, v, g, normalized, inverse_norm, t):
        """TensorFlow outside XLA: the moments' update and ``m / d`` from ``normalized`` (``g
        * inverse_norm``) in one kernel, then ``g / d`` from the new ``v`` in another
        (:mod:`tf_lamb.optimizers.kernels`); the gradient's normalization is the second
        kernel's scale, so the normalized gradient lives only until the first. The bias corrections use the betas rounded as the
        kernel holds them (see :func:`kernels.rounded`)."""
        dtype = variable.dtype
        betas = kernels.rounded(self.beta_1, dtype), kernels.rounded(self.beta_2, dtype)
        m_scale, g_scale, epsilon = self._once_per_step(
            ("lans-kernel", dtype),
            lambda: bias_corrections(t, *betas, self.epsilon, self.bias_correction),
        )
        return [
            layerwise.Direction(
                lambda for_norm, decay: kernels.adam_direction(
                    variable, m, v, normalized, *betas, epsilon, decay
                ),
                m_scale,
                self.beta_1,
                decays=True,
            ),
            layerwise.Direction(
                lambda for_norm, decay: kernels.scaled_direction(
                    variable, v, g, inverse_norm, epsilon, decay
                ),
                g_scale,
                1.0 - self.beta_1,
                decays=True,
            ),
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
