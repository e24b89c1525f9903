"""LARS: layer-wise adaptive rate scaling, in its classic (MLPerf) and LAMB-paper forms."""

import math

import keras
from keras import ops

from tf_lamb import _args
from tf_lamb.optimizers import layerwise
from tf_lamb.optimizers.terms import Direction, as_compute, compute_dtype

FORMS = ("classic", "paper")
_DEFAULT_TRUST_COEFFICIENT = {"classic": 0.001, "paper": 1.0}


@keras.saving.register_keras_serializable(package="tf_lamb")
@layerwise.with_layerwise_args
class LARS(layerwise.LayerwiseOptimizer):
    """Momentum SGD with each layer's step scaled by its trust ratio.

    Two forms are in use and one argument picks them. ``form="classic"`` (default) is You,
    Gitman and Ginsburg's LARS as in the TPU ResNet-50 reference and MLPerf::

        trust = eta * phi(||w||) / (||g|| + wd * ||w|| + epsilon)   (1 where ||w|| or ||g|| is 0)
        v = momentum * v + lr * trust * (g + wd * w)
        w = w - v            (nesterov: w = w - (momentum * v + lr * trust * (g + wd * w)))

    The learning rate sits inside the momentum buffer and the denominator is
    ``||g|| + wd ||w||``, as in MLPerf's TensorFlow 2 LARS (the ResNet-50 reference); optax
    and Model Garden use ``||g + wd w||`` instead, and timm and TensorFlow 1.x's
    ``tf.contrib.opt.LARSOptimizer`` keep the learning rate and the ratio outside the buffer
    (contrib also adds no decay to the gradient: it expects it in the loss).

    ``form="paper"`` is Algorithm 1 of the LAMB paper, the same layer-wise scheme as LAMB
    with a momentum direction::

        m = momentum * m + (1 - momentum) * (g + wd * w)
        w = w - lr * eta * phi(||w||) / ||m|| * m      (nesterov: momentum * m + (1 - momentum) * (g + wd * w) as direction)

    In both forms weight decay enters the gradient (there is no placement switch), and a
    layer excluded from weight decay gets ``wd = 0``; a layer excluded from layer adaptation
    gets trust ratio 1 (classic: ``local_lr = lr``). With the default rule the adaptation
    list falls back to the weight-decay list, which gives MLPerf's ``skip_list`` behaviour:
    pass ``exclude_from_weight_decay=["batch_norm", "bias"]`` to skip both.

    Args:
        learning_rate: float >= 0, a ``LearningRateSchedule`` or a callable. Defaults to 1.0.
            MLPerf v0.7 ResNet-50 (classic form): base 17 at global batch 8192 with eta 0.001.
        momentum: float in [0, 1). Defaults to 0.9 (MLPerf, paper).
        weight_decay: float >= 0. Defaults to 0. MLPerf v0.7 ResNet-50: 2e-4.
        trust_coefficient: float > 0, ``eta``. Defaults to ``None``: 0.001 for the classic form
            (You et al. 2017, MLPerf) and 1.0 for the paper form (Algorithm 1 has none).
        epsilon: float >= 0 added to the classic denominator. Defaults to 0 (MLPerf v0.7
            passes ``--lars_epsilon=0``); unused by the paper form.
        nesterov: bool. Defaults to False.
        form: ``"classic"`` or ``"paper"``. Defaults to ``"classic"``.
        {{layerwise_args}}

    Slots: ``momentum``, one of each variable's shape and dtype; ``layer_statistics``,
    float32 (layers, 3): ``||w||``, the norm in the ratio's denominator (classic: ``||g||``;
    paper: ``||m||``, or with ``nesterov`` the norm of the Nesterov direction) and the trust
    ratio.

    Raises:
        ValueError: an argument is outside its range; the message names it.

    References:
        - You, Gitman, Ginsburg, "Large Batch Training of Convolutional Networks" (2017,
          arXiv 1708.03888).
        - You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76
          minutes" (arXiv 1904.00962), Algorithm 1 (the formula as commonly
          quoted: the paper's text could not be checked here).
        - MLPerf training v0.7, Google ResNet-50 TPU submission (``lars_optimizer.py``).
    """

    def __init__(
        self,
        learning_rate=1.0,
        momentum=0.9,
        weight_decay=0.0,
        trust_coefficient=None,
        epsilon=0.0,
        nesterov=False,
        form="classic",
        exclude_from_weight_decay=None,
        exclude_from_layer_adaptation=None,
        weight_norm_bounds=(0.0, None),
        max_trust_ratio=None,
        name="lars",
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
        momentum = _args.check_real("momentum", momentum, 0.0, 1.0, high_open=True)
        form = _args.check_choice("form", form, FORMS)
        if trust_coefficient is not None:
            trust_coefficient = _args.check_real(
                "trust_coefficient", trust_coefficient, 0.0, math.inf, low_open=True
            )
        epsilon = _args.check_real("epsilon", epsilon, 0.0, math.inf)
        self.momentum = momentum
        self.trust_coefficient = trust_coefficient
        self.epsilon = epsilon
        self.nesterov = _args.check_bool("nesterov", nesterov)
        self.form = form

    # Its directions are a slot or the decayed gradient (paper Nesterov: an axpy of the two).
    stored_directions = True

    @property
    def weight_decay_mode(self):
        """Classic: ``wd * w`` joins the direction ``g`` (the ratio's denominator takes it as
        ``wd * ||w||``); paper: it joins the gradient before the momentum."""
        return "inside" if self.form == "classic" else "l2"

    @property
    def eta(self):
        """The trust coefficient in use: ``trust_coefficient``, or the form's default."""
        return self.trust_coefficient or _DEFAULT_TRUST_COEFFICIENT[self.form]

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums = self.add_optimizer_variables(var_list, "momentum")

    def _slots(self, index):
        return (self._momentums[index],)

    def _directions(self, step, layer, g):
        if self.form == "classic":
            return [Direction(g, norm_of=g, epsilon=self.epsilon, trust_coefficient=self.eta)]
        (m,) = layer.slots
        self._store(m, self.momentum * as_compute(m) + (1.0 - self.momentum) * g)
        m = as_compute(m)
        if self.nesterov:
            m = self.momentum * m + (1.0 - self.momentum) * g
        return [Direction(m, trust_coefficient=self.eta)]

    def _descend(self, layer, lr, terms, shrink):
        if self.form == "paper":
            return super()._descend(layer, lr, terms, shrink)
        # Classic: the learning rate and the ratio go into the momentum buffer.
        ((factor, u),) = terms
        step = ops.cast(lr * factor, compute_dtype(layer.variable.dtype)) * u
        self._move(layer.variable, momentum_step(self, layer.slots[0], step))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                "trust_coefficient": self.trust_coefficient,
                "epsilon": self.epsilon,
                "nesterov": self.nesterov,
                "form": self.form,
            }
        )
        return config


def momentum_step(optimizer, buffer, step):
    """Heavy-ball momentum: ``b <- momentum * b + step`` (stored in the slot ``buffer``),
    returning what moves the weights, ``b`` (or, Nesterov, ``step + momentum * b``), as a
    compute-dtype tensor. ``optimizer`` holds ``momentum`` and ``nesterov`` (LARS, LARC)."""
    optimizer._store(buffer, optimizer.momentum * as_compute(buffer) + step)
    b = as_compute(buffer)
    return step + optimizer.momentum * b if optimizer.nesterov else b
