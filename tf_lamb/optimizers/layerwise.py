"""Layer-wise adaptation, written once for LAMB, LARS and LANS.

The LAMB paper's general strategy (You et al. 2020, arXiv 1904.00962, Sec. 3.1) takes a base
direction ``u`` for each layer ``w`` (one variable tensor) and moves the layer by

    w <- w - lr * phi(||w||) / ||u|| * u,        phi(z) = clip(z, lower, upper)

This module holds everything the three optimizers share: the trust ratio (with the paper's
``phi`` bounds, the zero-norm rule and the optional LAMBC/LARC cap), the two exclusion lists
matched on variable paths, the weight-decay placements, and argument validation. Each optimizer
only computes its direction.
"""

import math
import re

import keras
from keras import ops

#: Where weight decay enters the update (SPEC.md, LAMB):
#: ``"inside"``: ``u <- u + wd * w`` before the trust ratio (paper Algorithm 2, tfa, apex, optax);
#: ``"decoupled"``: ``w <- w - lr * wd * w`` outside the trust ratio, applied first as
#: ``keras.optimizers.Lamb`` does (AdamW-style);
#: ``"l2"``: ``g <- g + wd * w`` before the moments (apex ``adam_w_mode=False``).
WEIGHT_DECAY_MODES = ("inside", "decoupled", "l2")


def l2_norm(x):
    """The l2 norm over a whole tensor, accumulated in at least float32.

    Args:
        x: a tensor of any shape and a float dtype.

    Returns:
        A scalar tensor, float32 for 16-bit inputs, else the dtype of ``x``.
    """
    if keras.backend.standardize_dtype(x.dtype) in ("float16", "bfloat16"):
        x = ops.cast(x, "float32")
    return ops.sqrt(ops.sum(ops.square(x)))


def dense_gradient(gradient, dtype):
    """The gradient as a dense tensor of ``dtype``.

    Embedding gradients arrive as ``tf.IndexedSlices`` on the TensorFlow backend. A layer's
    trust ratio needs the norm of its whole direction, so the moments are updated densely,
    as tfa's LAMB did (there is no lazy, row-wise LAMB); repeated rows are summed.
    """
    if hasattr(gradient, "indices") and hasattr(gradient, "dense_shape"):
        indices = ops.expand_dims(gradient.indices, -1)
        gradient = ops.scatter(indices, gradient.values, gradient.dense_shape)
    return ops.cast(gradient, dtype)


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
            LARS, ``||g||``).
        coefficient: Python float, the LARS trust coefficient ``eta``; 1 for LAMB and LANS.
        bounds: ``(lower, upper)`` for ``phi(z) = clip(z, lower, upper)``; ``upper=None``
            means no upper bound. The default ``(0, None)`` makes ``phi`` the identity.
            LAMB paper Sec. 3.1.
        max_ratio: optional Python float capping the ratio ("LAMBC"/"LARC" clipping).
        denominator_offset: added to ``||u||`` in the denominator only (classic LARS:
            ``wd * ||w|| + epsilon``); the zero test still looks at ``||u||``.

    Returns:
        A scalar tensor of the dtype of ``weight_norm``.
    """
    lower, upper = bounds
    phi = weight_norm
    if lower > 0.0 or upper is not None:
        phi = ops.clip(phi, lower, math.inf if upper is None else upper)
    positive = ops.logical_and(weight_norm > 0.0, update_norm > 0.0)
    denominator = update_norm + denominator_offset
    safe = ops.where(positive, denominator, ops.ones_like(denominator))
    ratio = ops.where(positive, coefficient * phi / safe, ops.ones_like(phi))
    if max_ratio is not None:
        ratio = ops.minimum(ratio, max_ratio)
    return ratio


def check_range(name, value, low, high, low_open=False, high_open=False):
    """Raises a ValueError naming ``name``, the interval and ``value`` unless it lies inside."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        ok = (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high
        )
    if not ok:
        interval = (
            ("(" if low_open else "[")
            + f"{low}, {high}"
            + (")" if high_open or high == math.inf else "]")
        )
        raise ValueError(
            f"Argument `{name}` must be a number in the range {interval}. "
            f"Received: {name}={value!r}"
        )


def check_choice(name, value, choices):
    """Raises a ValueError naming ``name`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(
            f"Argument `{name}` must be one of {list(choices)}. Received: {name}={value!r}"
        )


class Exclusions:
    """Which layers a rule leaves out: regexes, callables or variables, matched at build time.

    A regex matches when ``re.search`` finds it in the variable's ``path``
    (``"encoder/layer_0/LayerNorm/gamma"``) or its ``name``. Matching the path is what makes
    BERT's classic ``["LayerNorm", "layer_norm", "bias"]`` work on every Keras backend: Keras'
    own ``exclude_from_weight_decay`` matches ``variable.name``, which is only ``"gamma"`` on
    JAX and PyTorch.

    Args:
        spec: ``None`` (nothing excluded), a regex string, a callable ``f(variable) -> bool``,
            or a list mixing regex strings, callables and ``keras.Variable`` objects (matched
            by identity).
        argument: the constructor argument name, for error messages.

    Raises:
        ValueError: an item is neither a string, a callable nor a variable, or a regex does
            not compile.
    """

    def __init__(self, spec, argument):
        self.spec = spec
        items = [] if spec is None else [spec] if isinstance(spec, (str, dict)) else spec
        if callable(items) and not isinstance(items, keras.Variable):
            items = [items]
        self._patterns, self._callables, self._variables = [], [], []
        for item in items:
            if isinstance(item, dict):  # a serialized registered function
                item = keras.saving.deserialize_keras_object(item)
            if isinstance(item, str):
                try:
                    self._patterns.append(re.compile(item))
                except re.error as e:
                    raise ValueError(
                        f"Argument `{argument}` must hold valid regular expressions; "
                        f"{item!r} does not compile ({e}). Received: {argument}={spec!r}"
                    ) from e
            elif isinstance(item, keras.Variable):
                self._variables.append(item)
            elif callable(item):
                self._callables.append(item)
            else:
                raise ValueError(
                    f"Argument `{argument}` must be None, a regex string, a callable or a "
                    f"list of regex strings, callables and variables. Received an item "
                    f"{item!r} of type {type(item).__name__}."
                )

    def add(self, var_list=None, var_names=None):
        """Adds variables and regexes (the Keras ``exclude_from_weight_decay`` method's form)."""
        self._variables.extend(var_list or [])
        self._patterns.extend(re.compile(n) for n in var_names or [])

    def matches(self, variable):
        """Whether ``variable`` (a ``keras.Variable``) is excluded."""
        if any(variable is v for v in self._variables):
            return True
        texts = [t for t in (getattr(variable, "path", None), variable.name) if t]
        if any(p.search(t) for p in self._patterns for t in texts):
            return True
        return any(bool(f(variable)) for f in self._callables)

    def get_config(self):
        """A JSON-friendly list: regexes as given, variables as anchored path regexes,
        registered functions serialized by Keras. ``None`` when nothing was given."""
        if self.spec is None and not (self._patterns or self._variables):
            return None
        out = [p.pattern for p in self._patterns]
        out += [f"^{re.escape(v.path)}$" for v in self._variables]
        out += [keras.saving.serialize_keras_object(f) for f in self._callables]
        return out


class LayerwiseOptimizer(keras.optimizers.Optimizer):
    """Base class for optimizers that scale each layer's step by a trust ratio.

    Holds the arguments LAMB, LARS and LANS share, validates them, resolves the exclusion
    lists per variable at ``build`` time (by path, so it works on every backend and under
    ``tf.distribute``, where ``update_step`` sees raw per-device variables), and applies a
    direction with :meth:`_apply_layerwise`. Keras' own ``weight_decay`` is never passed to
    the base class, so no layer is decayed twice.

    Args:
        learning_rate: float >= 0, a ``LearningRateSchedule`` or a callable.
        weight_decay: float >= 0, the decay rate ``wd`` (tfa's name; ``weight_decay_rate``,
            Model Garden's name, is accepted as an alias).
        exclude_from_weight_decay: layers that get no weight decay (see :class:`Exclusions`).
        exclude_from_layer_adaptation: layers whose trust ratio is fixed at 1. ``None`` (the
            default) means "the same as `exclude_from_weight_decay`" (tfa and Google's
            rule); pass ``[]`` to adapt every layer (NVIDIA's NVLAMB).
        weight_norm_bounds: ``(lower, upper)`` of ``phi(||w||) = clip(||w||, lower, upper)``,
            LAMB paper Sec. 3.1; ``upper=None`` is unbounded. Default ``(0.0, None)``:
            ``phi`` is the identity, as in the authors' code.
        max_trust_ratio: optional float > 0 capping the trust ratio (LAMBC / LARC). Default
            ``None`` (no cap).
        **kwargs: the ``keras.optimizers.Optimizer`` arguments (``global_clipnorm``,
            ``gradient_accumulation_steps``, ``use_ema``, ``name``, ...).

    Raises:
        ValueError: an argument is outside its range (the message names it).
    """

    def __init__(
        self,
        learning_rate,
        weight_decay=0.0,
        exclude_from_weight_decay=None,
        exclude_from_layer_adaptation=None,
        weight_norm_bounds=(0.0, None),
        max_trust_ratio=None,
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
        if isinstance(learning_rate, int) and not isinstance(learning_rate, bool):
            learning_rate = float(learning_rate)
        if isinstance(learning_rate, float):
            check_range("learning_rate", learning_rate, 0.0, math.inf)
        super().__init__(learning_rate=learning_rate, weight_decay=None, **kwargs)
        weight_decay = 0.0 if weight_decay is None else weight_decay
        check_range("weight_decay", weight_decay, 0.0, math.inf)
        self.weight_decay_rate = float(weight_decay)
        self._weight_decay_exclusions = Exclusions(
            exclude_from_weight_decay, "exclude_from_weight_decay"
        )
        self._adaptation_exclusions = (
            None
            if exclude_from_layer_adaptation is None
            else Exclusions(exclude_from_layer_adaptation, "exclude_from_layer_adaptation")
        )
        try:
            lower, upper = weight_norm_bounds
        except (TypeError, ValueError):
            raise ValueError(
                "Argument `weight_norm_bounds` must be a pair (lower, upper) with "
                "0 <= lower <= upper (upper may be None). "
                f"Received: weight_norm_bounds={weight_norm_bounds!r}"
            ) from None
        check_range("weight_norm_bounds[0]", lower, 0.0, math.inf)
        if upper is not None:
            check_range(
                "weight_norm_bounds[1]", upper, lower, math.inf, low_open=lower == 0.0
            )
        self.weight_norm_bounds = (float(lower), None if upper is None else float(upper))
        if max_trust_ratio is not None:
            check_range("max_trust_ratio", max_trust_ratio, 0.0, math.inf, low_open=True)
        self.max_trust_ratio = max_trust_ratio

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

    def build(self, var_list):
        """Creates nothing by itself; records per layer whether it decays and adapts.

        Subclasses call this first, then create their slots.
        """
        if self.built:
            return
        super().build(var_list)
        adapt = self._adaptation_exclusions or self._weight_decay_exclusions
        self._decay_rates = [
            0.0 if self._weight_decay_exclusions.matches(v) else self.weight_decay_rate
            for v in var_list
        ]
        self._adapts = [not adapt.matches(v) for v in var_list]

    def layer_settings(self):
        """Per layer (in build order): ``(path, weight_decay_rate, adapts)``.

        Useful to check that an exclusion list matched what was intended.

        Raises:
            ValueError: the optimizer is not built yet.
        """
        if not self.built:
            raise ValueError("The optimizer is not built yet: call `build(variables)` first.")
        paths = [getattr(v, "path", v.name) for v in self._trainable_variables]
        return list(zip(paths, self._decay_rates, self._adapts))

    def _trust_ratio(
        self, index, weight_norm, update_norm, coefficient=1.0, denominator_offset=0.0
    ):
        """The trust ratio of layer ``index``; exactly 1 where the layer is not adapted."""
        if not self._adapts[index]:
            return 1.0
        return trust_ratio(
            weight_norm,
            update_norm,
            coefficient,
            self.weight_norm_bounds,
            self.max_trust_ratio,
            denominator_offset,
        )

    def _apply_layerwise(
        self, variable, index, learning_rate, directions, mode="inside", trust_coefficient=1.0
    ):
        """``w <- w - lr * sum_k c_k * ratio_k * u_k`` for ``directions = [(c_k, u_k), ...]``.

        Weight decay is added to each direction (``mode="inside"``) or applied to ``w``
        before the trust ratios are taken (``"decoupled"``, as ``keras.optimizers.Lamb``);
        ``"l2"`` decay was already folded into the gradient by the caller. Every term uses
        the same ``w`` (the LANS authors' kernel, not MXNet's sequential form).
        """
        wd = self._decay_rates[index]
        adapts = self._adapts[index]
        weight = variable
        if wd and mode == "decoupled":
            weight = variable * (1.0 - learning_rate * wd)
        weight_norm = l2_norm(weight) if adapts else None
        step = None
        for coefficient, direction in directions:
            if wd and mode == "inside":
                direction = direction + wd * variable
            scale = coefficient
            if adapts:
                ratio = self._trust_ratio(
                    index, weight_norm, l2_norm(direction), trust_coefficient
                )
                scale = coefficient * ops.cast(ratio, direction.dtype)
            term = scale * direction
            step = term if step is None else step + term
        if weight is variable:
            self.assign_sub(variable, learning_rate * step)
        else:
            self.assign(variable, weight - learning_rate * step)

    # Global gradient clipping (NVLAMB pre-normalization) must see the gradients after the
    # cross-replica sum. Keras clips in replica context, before the TensorFlow backend's
    # all-reduce, so under MirroredStrategy each replica would clip its own partial sum. The
    # clipping is therefore moved behind the sum: into TensorFlow's `_all_reduce_sum_gradients`,
    # and to the start of `_backend_update_step` on the other backends, which have no
    # all-reduce inside the optimizer.
    def _clip_gradients(self, grads):
        if self.global_clipnorm:
            return grads
        return super()._clip_gradients(grads)

    def _clip_by_global_norm(self, grads):
        """``g / max(1, ||G|| / global_clipnorm)`` with ``||G||`` over all gradients."""
        if not self.global_clipnorm:
            return grads
        grads = [None if g is None else dense_gradient(g, g.dtype) for g in grads]
        norm = ops.sqrt(sum(ops.sum(ops.square(ops.cast(g, "float32"))) for g in grads if g is not None))
        scale = 1.0 / ops.maximum(1.0, norm / self.global_clipnorm)
        return [None if g is None else g * ops.cast(scale, g.dtype) for g in grads]

    def _all_reduce_sum_gradients(self, grads_and_vars):
        """TensorFlow backend only: the cross-replica sum, then global clipping."""
        reduced = list(super()._all_reduce_sum_gradients(grads_and_vars))
        clipped = self._clip_by_global_norm([g for g, _ in reduced])
        return list(zip(clipped, [v for _, v in reduced]))

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        if keras.backend.backend() != "tensorflow":
            grads = self._clip_by_global_norm(grads)
        super()._backend_update_step(grads, trainable_variables, learning_rate)

    def _decay_in_gradient(self, gradient, variable, index):
        """``g + wd * w`` (the ``"l2"`` placement and both LARS forms)."""
        wd = self._decay_rates[index]
        return gradient + wd * variable if wd else gradient

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
            }
        )
        return config
