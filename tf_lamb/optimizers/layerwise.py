"""Layer-wise adaptation, written once for LAMB, LARS, LANS and LARC.

The LAMB paper's general strategy (You et al. 2020, arXiv 1904.00962, Sec. 3.1) takes a base
direction ``u`` for each layer ``w`` (one variable tensor) and moves the layer by

    w <- w - lr * phi(||w||) / ||u|| * u,        phi(z) = clip(z, lower, upper)

This module is that strategy and nothing else: the trust ratio (with the paper's ``phi``
bounds, the zero-norm rule and the optional cap), the weight-decay placements, argument
validation, and :meth:`LayerwiseOptimizer._update_layer`, the reference update of one layer in
``keras.ops``. Each optimizer supplies its :class:`Direction` s and its slots. How a step runs
on a given runtime (fused over all layers, compiled, on TensorFlow's kernels) is decided by a
:class:`~tf_lamb.optimizers.plan.StepPlan` passed to the update, not kept on the optimizer;
``docs/design.md`` describes the layers of the design and how to add a direction.
"""

import math
import numbers

import keras
import numpy as np
from keras import ops

from tf_lamb._args import check_bool, check_bounds, check_choice, check_real
from tf_lamb.optimizers import plan, seams, tf_graph, xla
from tf_lamb.optimizers._doc import with_layerwise_args
from tf_lamb.optimizers.clipping import ClipAfterSum, dense_gradient
from tf_lamb.optimizers.exclusions import Exclusions
from tf_lamb.optimizers.fused import FusedStep
from tf_lamb.optimizers.terms import HALF_DTYPES, Layer, as_compute, compute_dtype

#: Where weight decay enters the update (:meth:`LayerwiseOptimizer._update_layer`):
#: ``"inside"``: ``u <- u + wd * w`` before the trust ratio (paper Algorithm 2, tfa, apex, optax);
#: ``"decoupled"``: ``w <- (1 - lr * wd) * w`` outside the trust ratio, applied first as
#: ``keras.optimizers.Lamb`` does (AdamW-style);
#: ``"l2"``: ``g <- g + wd * w`` before the direction (apex ``adam_w_mode=False``; LARS'
#: paper form). Classic LARS and LARC decay ``"inside"``, their direction being ``g``.
WEIGHT_DECAY_MODES = ("inside", "decoupled", "l2")


def trust_ratio(
    weight_norm,
    update_norm,
    coefficient=1.0,
    bounds=(0.0, None),
    max_ratio=None,
    denominator_offset=0.0,
):
    """The layer-wise trust ratio ``coefficient * phi(||w||) / (||u|| + denominator_offset)``.

    The ratio is 1 where ``||w|| == 0`` or ``||u|| == 0`` (so zero-initialized biases and
    LayerNorm betas train, and nothing divides by zero), as in the authors' code and tfa.
    Computed with tensor ops only: no Python branch on a norm, so a compiled step never
    retraces when a norm crosses zero.

    Args:
        weight_norm: scalar float tensor, ``||w||``.
        update_norm: scalar float tensor, ``||u||``, the norm of the direction (for classic
            LARS and LARC, ``||g||``).
        coefficient: Python float, the LARS trust coefficient ``eta``; 1 for LAMB and LANS.
        bounds: ``(lower, upper)`` for ``phi(z) = clip(z, lower, upper)``; ``upper=None``
            means no upper bound. The default ``(0, None)`` makes ``phi`` the identity.
            LAMB paper Sec. 3.1.
        max_ratio: optional Python float capping the ratio ("LAMBC"/"LARC" clipping); a
            layer with a zero norm keeps its ratio of 1 even under a cap below 1.
        denominator_offset: added to ``||u||`` in the denominator only (classic LARS:
            ``wd * ||w|| + epsilon``); the zero test still looks at ``||u||``.

    Returns:
        A scalar tensor of the dtype of ``weight_norm``.

    References:
        - You, Gitman, Ginsburg, "Large Batch Training of Convolutional Networks" (2017,
          arXiv 1708.03888): the trust ratio ``eta ||w|| / ||g||`` (LARS).
        - You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76
          minutes", ICLR 2020 (arXiv 1904.00962), Sec. 3.1: ``phi`` and the ratio of LAMB.
    """
    lower, upper = bounds
    phi = weight_norm
    if lower > 0.0 or upper is not None:
        phi = ops.clip(phi, lower, math.inf if upper is None else upper)
    positive = ops.logical_and(weight_norm > 0.0, update_norm > 0.0)
    denominator = update_norm
    if not (isinstance(denominator_offset, float) and denominator_offset == 0.0):
        denominator = denominator + denominator_offset
    if coefficient != 1.0:
        phi = coefficient * phi
    one = ops.ones_like(phi)
    ratio = phi / ops.where(positive, denominator, one)
    if max_ratio is not None:  # (`where`: Keras' PyTorch `minimum` returns float64 as float32.)
        ratio = ops.where(ratio > max_ratio, max_ratio * one, ratio)
    return ops.where(positive, ratio, one)  # The zero-norm rule holds whatever the cap.


@with_layerwise_args
class LayerwiseOptimizer(FusedStep, ClipAfterSum, keras.optimizers.Optimizer):
    """Base class for optimizers that scale each layer's step by a trust ratio.

    Holds the arguments LAMB, LARS, LANS and LARC share, validates them, resolves the
    exclusion lists per variable at ``build`` time (by path, so it works on every backend and
    under ``tf.distribute``, where ``update_step`` sees raw per-device variables), and applies
    the directions a subclass builds (``_directions``) with ``_update_layer``.
    Keras' own ``weight_decay`` is never passed to the base class, so no layer is decayed
    twice.

    Args:
        learning_rate: float >= 0, a ``LearningRateSchedule`` or a callable.
        weight_decay: float >= 0, the decay rate ``wd`` (tfa's name; ``weight_decay_rate``,
            Model Garden's name, is accepted as an alias).
        {{layerwise_args}}

    Raises:
        ValueError: an argument is outside its range (the message names it).

    References:
        - You, Gitman, Ginsburg, "Large Batch Training of Convolutional Networks" (2017,
          arXiv 1708.03888): layer-wise adaptation (LARS).
        - You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76
          minutes", ICLR 2020 (arXiv 1904.00962), Sec. 3.1: the general layer-wise scheme.
    """

    def __init__(
        self,
        learning_rate,
        weight_decay=0.0,
        exclude_from_weight_decay=None,
        exclude_from_layer_adaptation=None,
        weight_norm_bounds=(0.0, None),
        max_trust_ratio=None,
        fused=None,
        jit_compile=True,
        step_plan=None,
        **kwargs,
    ):
        alias = kwargs.pop("weight_decay_rate", None)
        if alias is not None:
            if weight_decay not in (0.0, None):
                raise ValueError(
                    "Pass only one of `weight_decay` and its alias `weight_decay_rate`. "
                    f"Received: weight_decay={weight_decay}, weight_decay_rate={alias}"
                )
            weight_decay = alias
        if isinstance(learning_rate, numbers.Real):
            learning_rate = check_real("learning_rate", learning_rate, 0.0, math.inf)
        super().__init__(learning_rate=learning_rate, weight_decay=None, **kwargs)
        weight_decay = 0.0 if weight_decay is None else weight_decay
        self.weight_decay_rate = check_real("weight_decay", weight_decay, 0.0, math.inf)
        self._weight_decay_exclusions = Exclusions(
            exclude_from_weight_decay, "exclude_from_weight_decay"
        )
        self._adaptation_exclusions = (
            None
            if exclude_from_layer_adaptation is None
            else Exclusions(exclude_from_layer_adaptation, "exclude_from_layer_adaptation")
        )
        self.weight_norm_bounds = check_bounds("weight_norm_bounds", weight_norm_bounds)
        if max_trust_ratio is not None:
            max_trust_ratio = check_real(
                "max_trust_ratio", max_trust_ratio, 0.0, math.inf, low_open=True
            )
        self.max_trust_ratio = max_trust_ratio
        fused = check_choice("fused", fused, (None, True, False))
        if fused and not seams.fused_supported():
            raise ValueError(
                f"Argument `fused=True` needs Keras' private optimizer hooks. "
                f"{seams.describe_missing()} Pass fused=None to fall back on the per-variable "
                "loop."
            )
        self.fused = fused
        self.jit_compile = check_bool("jit_compile", jit_compile)
        self._step_plan = plan.check_spec(step_plan)
        self._fused_active = seams.fused_supported() if fused is None else fused
        self._compiled_step = None

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Keras' method form: adds variables and name regexes to the weight-decay exclusions.

        Unlike Keras' base method, ``var_names`` regexes match the variable path too. Call it
        before the optimizer is built.

        Raises:
            ValueError: the optimizer is already built.
        """
        if self.built:
            raise ValueError(
                "`exclude_from_weight_decay()` can only be called before the optimizer is "
                "built."
            )
        self._weight_decay_exclusions.add(var_list, var_names)

    #: Directions per layer whose trust ratios are recorded (LANS has two terms).
    num_directions = 1

    #: Where weight decay enters (one of :data:`WEIGHT_DECAY_MODES`); LAMB and LANS take it
    #: as an argument, LARS and LARC add it to the gradient.
    weight_decay_mode = "inside"

    #: Whether the directions are stored tensors (a slot, or the gradient plus decay), so
    #: building one makes no full-size temporary; the step plan then leaves the layers
    #: unordered on JAX (see :func:`tf_lamb.optimizers.plan.plan_for`).
    stored_directions = False

    def build(self, var_list):
        """Records per layer whether it decays and adapts; creates the statistics slot.

        Subclasses call this first, then create their slots.

        Raises:
            ValueError: a variable is not of a real floating-point dtype (float16, bfloat16,
                float32 or float64); the trust ratio's norms are of real tensors.
        """
        if self.built:
            return
        for variable in var_list:
            dtype = keras.backend.standardize_dtype(variable.dtype)
            if dtype not in HALF_DTYPES + ("float32", "float64"):
                raise ValueError(
                    f"{type(self).__name__} updates float16, bfloat16, float32 or float64 "
                    f"variables. Received the variable "
                    f"`{getattr(variable, 'path', variable.name)}` of dtype {dtype}."
                )
        super().build(var_list)
        adapt = self._adaptation_exclusions or self._weight_decay_exclusions
        self._decay_rates = [
            0.0 if self._weight_decay_exclusions.matches(v) else self.weight_decay_rate
            for v in var_list
        ]
        self._adapts = [not adapt.matches(v) for v in var_list]
        # Per layer: ||w||, then ||u_k|| and the trust ratio of each direction k, as taken
        # by the last step. float32 whatever the policy; 0, 0, 1 for a layer not adapted.
        self._layer_statistics = self.add_variable(
            (len(var_list), 1 + 2 * self.num_directions),
            initializer="zeros",
            dtype="float32",
            aggregation="only_first_replica",
            name="layer_statistics",
        )

    def layer_settings(self):
        """Per layer (in build order): ``(path, weight_decay_rate, adapts)``.

        Useful to check that an exclusion list matched what was intended.

        Raises:
            ValueError: the optimizer is not built yet.
        """
        self._check_built()
        paths = [getattr(v, "path", v.name) for v in self._trainable_variables]
        return list(zip(paths, self._decay_rates, self._adapts))

    def layer_statistics(self):
        """The last step's per-layer norms and trust ratios, kept at no extra pass.

        Returns:
            A dict of NumPy arrays over the L layers in build order: ``path`` (str, (L,)),
            ``adapts`` (bool, (L,)), ``weight_norm`` (float32, (L,), ``||w||`` before the
            step; ``||(1 - lr wd) w||`` with ``"decoupled"`` decay), ``update_norm`` and
            ``trust_ratio`` (float32, (L, K), K = ``num_directions``: 2 for LANS, else 1;
            ``||g||`` for classic LARS and LARC). A layer not adapted reads 0, 0 and 1. All
            zeros before the first step; under ``tf.distribute``, the first replica's.

        Raises:
            ValueError: the optimizer is not built yet.
        """
        self._check_built()
        values = np.asarray(keras.ops.convert_to_numpy(self._layer_statistics))
        k = self.num_directions
        return {
            "path": np.asarray([path for path, _, _ in self.layer_settings()]),
            "adapts": np.asarray(self._adapts),
            "weight_norm": values[:, 0],
            "update_norm": values[:, 1 : 1 + k],
            "trust_ratio": values[:, 1 + k :],
        }

    def _check_built(self):
        if not self.built:
            raise ValueError("The optimizer is not built yet: call `build(variables)` first.")

    def _plan(self, variable, compiled):
        """This step's :class:`~tf_lamb.optimizers.plan.StepPlan` (see :func:`plan.choose`)."""
        return plan.choose(self._step_plan, variable, compiled, self.stored_directions)

    @property
    def step_plan(self):
        """The ``step_plan`` argument: None, ``"reference"`` or a dict of plan fields."""
        spec = self._step_plan
        return dict(spec) if isinstance(spec, tuple) else spec

    def update_step(self, gradient, variable, learning_rate):
        """Keras' per-variable step (the fallback path): one layer through ``_update_layer``."""
        index = self._get_variable_index(variable)
        step = plan.Step(self._plan(variable, compiled=False), learning_rate, self.iterations)
        layer = Layer(index, gradient, variable, self._slots(index))
        self._record_statistics(self._layer_statistics, [index], [self._update_layer(step, layer)])

    def _update_layer(self, step, layer):
        """One layer's step, the reference update of every layer-wise optimizer::

            g <- g + wd * w                      ("l2" decay)
            u_k <- each direction                (:meth:`_directions`)
            u_k <- u_k + wd * w                  ("inside" decay)
            r_k <- eta * phi(||(1 - lr wd) w||) / ||u_k||   (1 where a norm is 0)
            w <- (1 - lr * wd) * w - lr * sum_k c_k * r_k * u_k   ("decoupled" decay)

        Weight decay enters the reference update here and only here, in one of the three
        places its mode names (TensorFlow's kernel fast path restates it per kernel, tested
        equal). For classic LARS and LARC, ``||u_k||`` is ``||g|| + wd ||w|| + epsilon``.
        Every term is taken at the same ``w`` (the LANS authors' kernel). A 16-bit layer is
        computed in float32 (:func:`compute_dtype`) and rounded once, when stored.

        Args:
            step: the :class:`~tf_lamb.optimizers.plan.Step`.
            layer: the :class:`Layer`.

        Returns:
            The layer's statistics ``(||w||, [||u_k||], [ratio_k])``, scalars.
        """
        if step.plan.kernels:  # TensorFlow outside XLA: its fused kernels, where they apply.
            statistics = tf_graph.update_layer(self, step, layer)
            if statistics is not None:
                return statistics
        index, variable = layer.index, layer.variable
        dtype = compute_dtype(variable.dtype)
        wd, mode = self._decay_rates[index], self.weight_decay_mode
        lr = step.learning_rate(dtype)
        w = as_compute(variable)
        g = self._prepare_gradient(step, layer.ordered(dense_gradient(layer.gradient, dtype)))
        if wd and mode == "l2":
            g = g + wd * w
        shrink = 1.0 - lr * wd if wd and mode == "decoupled" else None
        directions = self._directions(step, layer, g)
        weight_norm, norms, ratios, terms = 0.0, [], [], []
        if self._adapts[index]:
            weight_norm = step.norm(layer.ordered(w))
            if shrink is not None:  # The ratio of the decayed weights.
                weight_norm = weight_norm * ops.cast(shrink, weight_norm.dtype)
        for k, direction in enumerate(directions):
            decay = wd if mode == "inside" else 0.0
            u = direction.value() + decay * w if decay else direction.value()
            factor = direction.coefficient
            if self._adapts[index]:
                offset = 0.0
                if direction.norm_of is not None:
                    norm = step.norm(direction.norm_of)
                    offset = wd * weight_norm + direction.epsilon
                elif step.plan.two_pass:
                    copy = xla.copy_for_norm(direction.u, k)
                    norm = step.norm(copy + decay * w if decay else copy)
                else:
                    norm = step.norm(u)
                ratio = self._trust_ratio(index, weight_norm, norm, direction, offset, lr)
                norms.append(norm)
                ratios.append(ratio)
                factor = factor * ops.cast(ratio, dtype)
            terms.append((factor, u))
        self._descend(layer, lr, terms, shrink)
        return weight_norm, norms, ratios

    def _prepare_gradient(self, step, g):
        """The gradient the directions start from (LANS normalizes it); ``g`` by default."""
        return g

    def _directions(self, step, layer, g):
        """A layer's directions, a list of :class:`Direction`; updates its slots. Each
        optimizer implements it.

        Args:
            step: the :class:`~tf_lamb.optimizers.plan.Step` (``step.t(dtype)`` is the
                1-based step, ``step.scalar`` computes a scalar once per step).
            layer: the :class:`Layer` (``layer.slots`` as :meth:`_slots` gives them).
            g: the dense gradient, of the layer's :func:`compute_dtype`, with ``"l2"``
                weight decay added.
        """
        raise NotImplementedError

    def _slots(self, index):
        """The slot variables of layer ``index``, a tuple. Each optimizer implements it."""
        raise NotImplementedError

    def _descend(self, layer, lr, terms, shrink):
        """Moves the layer: ``w <- w * shrink - lr * sum(factor * u for factor, u in
        terms)`` (``shrink`` None: no decoupled decay). LARS and LARC move through a momentum
        buffer instead."""
        dtype = compute_dtype(layer.variable.dtype)
        step = None
        for factor, u in terms:
            term = ops.cast(lr * factor, dtype) * u
            step = term if step is None else step + term
        self._move(layer.variable, step, shrink)

    def _trust_ratio(self, index, weight_norm, norm, direction, offset, lr):
        """The trust ratio of layer ``index`` for ``direction`` (see :func:`trust_ratio`);
        exactly 1 where the layer is not adapted. ``lr`` is the step's learning rate (LARC's
        clip is relative to it)."""
        if not self._adapts[index]:
            return 1.0
        return trust_ratio(
            weight_norm,
            norm,
            direction.trust_coefficient,
            self.weight_norm_bounds,
            self.max_trust_ratio,
            offset,
        )

    def _store(self, variable, value):
        """``variable <- value``, rounded to the variable's dtype where they differ (a
        16-bit slot from its float32 update)."""
        if keras.backend.standardize_dtype(value.dtype) != keras.backend.standardize_dtype(
            variable.dtype
        ):
            value = ops.cast(value, variable.dtype)
        self.assign(variable, value)

    def _move(self, variable, step, shrink=None):
        """``w <- w * shrink - step`` (``shrink`` None: ``w - step``), ``step`` in the layer's
        compute dtype; a 16-bit ``w`` is rounded once, from the float32 result."""
        if shrink is None and keras.backend.standardize_dtype(variable.dtype) not in HALF_DTYPES:
            self.assign_sub(variable, step)
        else:
            w = as_compute(variable)
            self._store(variable, w - step if shrink is None else w * shrink - step)

    def _record_statistics(self, statistics, indices, stats):
        """Writes the rows ``indices`` of the statistics slot: one scatter per step."""
        k = self.num_directions
        rows = []
        for weight_norm, norms, ratios in stats:
            values = [weight_norm] + (list(norms) or [0.0] * k) + (list(ratios) or [1.0] * k)
            rows.append(ops.stack([ops.cast(x, "float32") for x in values]))
        positions = ops.expand_dims(ops.convert_to_tensor(indices, "int32"), -1)
        self.assign(statistics, ops.scatter_update(statistics, positions, ops.stack(rows)))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "weight_decay": self.weight_decay_rate,
                "exclude_from_weight_decay": self._weight_decay_exclusions.get_config(),
                "exclude_from_layer_adaptation": (
                    None
                    if self._adaptation_exclusions is None
                    else self._adaptation_exclusions.get_config() or []
                ),
                "weight_norm_bounds": list(self.weight_norm_bounds),
                "max_trust_ratio": self.max_trust_ratio,
                "fused": self.fused,
                "jit_compile": self.jit_compile,
                "step_plan": self.step_plan,
            }
        )
        return config
