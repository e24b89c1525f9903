"""Layer-wise adaptation, written once for LAMB, LARS and LANS.

The LAMB paper's general strategy (You et al. 2020, arXiv 1904.00962, Sec. 3.1) takes a base
direction ``u`` for each layer ``w`` (one variable tensor) and moves the layer by

    w <- w - lr * phi(||w||) / ||u|| * u,        phi(z) = clip(z, lower, upper)

This module holds everything the three optimizers share: the trust ratio (with the paper's
``phi`` bounds, the zero-norm rule and the optional LAMBC/LARC cap), the two exclusion lists
matched on variable paths, the weight-decay placements, and argument validation. Each optimizer
only computes its direction.

It also holds the fused step: where Keras has the private hooks it overrides
(:func:`tf_lamb.optimizers.seams.fused_supported`), all layers are updated by one
function call, XLA-compiled on TensorFlow, with every layer's norms and trust ratios recorded
as optimizer state (:meth:`LayerwiseOptimizer.layer_statistics`). Elsewhere Keras' own
per-variable loop calls ``update_step``, which runs the same per-layer code.
"""

import contextlib
import functools
import math
import numbers
import re

import keras
import numpy as np
from keras import ops

from tf_lamb._args import check_bool, check_choice, check_real
from tf_lamb.optimizers import kernels, seams
from tf_lamb.optimizers.clipping import ClipAfterSum, dense_gradient

#: Where weight decay enters the update:
#: ``"inside"``: ``u <- u + wd * w`` before the trust ratio (paper Algorithm 2, tfa, apex, optax);
#: ``"decoupled"``: ``w <- w - lr * wd * w`` outside the trust ratio, applied first as
#: ``keras.optimizers.Lamb`` does (AdamW-style);
#: ``"l2"``: ``g <- g + wd * w`` before the moments (apex ``adam_w_mode=False``; LANS adds it
#: to the normalized gradient, as its authors' kernel does).
WEIGHT_DECAY_MODES = ("inside", "decoupled", "l2")

#: How :func:`l2_norm` reduces, fastest first on each runtime (benchmarks/README.md):
#: ``"reduce"``: ``sqrt(sum(x**2))``, one fused reduction where the compiler fuses well (XLA on
#: GPU and TPU); ``"fold"``: on XLA:CPU, whose reductions do not take the elementwise work
#: that feeds them at full bandwidth, the tensor's squares are first folded by adding its
#: eighths, one parallel elementwise loop into which XLA also fuses the computation of ``x``
#: (a layer's direction is then never stored), and what is left is reduced; ``"l2_loss"``:
#: TensorFlow without XLA, ``sqrt(2 * tf.nn.l2_loss(x))``, one Eigen kernel instead of three
#: (2.4x faster here) that XLA also compiles, should the caller's step be XLA-compiled;
#: ``"norm"``: ``keras.ops.norm`` (one kernel on PyTorch; float32 only, else ``"reduce"``).
NORM_METHODS = ("reduce", "fold", "l2_loss", "norm")

#: ``"fold"`` folds a tensor of at least this many elements, once, into this many parts.
#: One fold, not repeated ones: XLA merges consecutive folds into one loop over 16 or more
#: slices, and then it stores ``x`` instead of recomputing it there (measured with TensorFlow
#: 2.21 on BERT-base: 16 parts store every direction, 335 MiB of temporaries; 8 parts, 65 MiB).
_FOLD_MIN_SIZE = 65536
_FOLD_PARTS = 8


#: Variable dtypes whose step is computed in float32 (see :func:`compute_dtype`).
HALF_DTYPES = ("float16", "bfloat16")


def compute_dtype(dtype):
    """The dtype a layer of ``dtype`` is updated in: float32 for float16 and bfloat16
    variables (their moments, norms, trust ratios and step are computed in float32 from the
    stored 16-bit values, and the results rounded once when stored), else ``dtype`` itself.

    Args:
        dtype: a float dtype (string or backend dtype).

    Returns:
        str, the standardized dtype name.
    """
    dtype = keras.backend.standardize_dtype(dtype)
    return "float32" if dtype in HALF_DTYPES else dtype


def as_compute(x):
    """``x`` (a tensor or variable, read now) as a tensor of its :func:`compute_dtype`:
    float32 if it is 16-bit, else its own dtype.

    A variable is read into a tensor before any arithmetic, so a Python float multiplying
    it keeps the tensor's precision (Keras' PyTorch ops turn a Python float into a float32
    tensor before multiplying a float64 variable by it)."""
    if keras.backend.standardize_dtype(x.dtype) in HALF_DTYPES:
        return ops.cast(x, "float32")
    return ops.convert_to_tensor(x)


def l2_norm(x, method="reduce"):
    """The l2 norm over a whole tensor, accumulated in at least float32.

    Args:
        x: a tensor of any shape and a float dtype.
        method: one of :data:`NORM_METHODS`; all give the same value up to float rounding
            (the order of the additions differs).

    Returns:
        A scalar tensor, float32 for 16-bit inputs, else the dtype of ``x``.
    """
    x = as_compute(x)
    if method == "l2_loss":
        import tensorflow as tf

        return ops.sqrt(2.0 * tf.nn.l2_loss(x))
    if method == "norm" and keras.backend.standardize_dtype(x.dtype) == "float32":
        # (Keras' PyTorch `norm` computes a float64 tensor's norm in float32.)
        return ops.norm(ops.reshape(x, (-1,)))
    if method == "fold" and all(isinstance(d, int) for d in x.shape):
        x = ops.reshape(x, (-1,))
        size = x.shape[0]
        if size >= _FOLD_MIN_SIZE:
            h = size // _FOLD_PARTS
            parts = [ops.square(x[i * h : (i + 1) * h]) for i in range(_FOLD_PARTS)]
            total = ops.sum(functools.reduce(ops.add, parts))
            if size % _FOLD_PARTS:  # The tail that the parts leave.
                total = total + ops.sum(ops.square(x[_FOLD_PARTS * h :]))
            return ops.sqrt(total)
    return ops.sqrt(ops.sum(ops.square(x)))


def adam_direction(numerator, second_moment, epsilon, for_norm=False):
    """``numerator / (sqrt(second_moment) + epsilon)``, Adam's elementwise direction.

    A copy whose norm is taken (``for_norm`` true) is the same value to float rounding,
    written differently: ``numerator * reciprocal(sqrt(abs(second_moment)) + epsilon)``.
    ``abs`` changes nothing (a second moment is never negative), but XLA no longer sees a
    common ``sqrt`` to share between the copy whose norm is taken and the applied copy, so
    it keeps neither ``sqrt(v)`` nor the direction as a full-size temporary (see
    :class:`Direction`). A layer with two such copies (LANS' ``m`` and ``g`` directions)
    writes the second with ``maximum(second_moment, 0)`` in place of ``abs``, for the same
    reason (measured: one shared ``reciprocal(sqrt(abs(v)) + eps)`` of the word embeddings,
    89 MiB, on BERT-base).

    Args:
        numerator: tensor, ``m`` or ``g`` (any shape).
        second_moment: tensor of the same shape, ``v >= 0``.
        epsilon: scalar > 0.
        for_norm: ``False`` (the applied copy), ``True`` or ``1`` (a copy whose norm is
            taken), ``2`` (a layer's second such copy).
    """
    if not for_norm:
        return numerator / (ops.sqrt(second_moment) + epsilon)
    if for_norm == 2:
        root = ops.sqrt(ops.maximum(second_moment, 0.0))
    else:
        root = ops.sqrt(ops.abs(second_moment))
    return numerator * ops.reciprocal(root + epsilon)


def after(x, previous):
    """``x`` unchanged, but computed only once the variable ``previous`` holds its new value.

    The fused step updates the layers in order; without a data dependence between them a
    compiler may start every layer's first pass before any layer's second pass, keeping one
    direction per layer alive at once (the whole model's size in temporaries, measured with
    XLA:CPU under JAX). ``x * (1 + 0 * isfinite(w[0]))`` is ``x`` bit for bit, whatever
    ``w`` holds (``isfinite`` is 0 or 1, so a NaN in one layer does not reach the next).

    Args:
        x: a float tensor (a layer's dense gradient, or its weights for their norm).
        previous: the previous layer's variable, already assigned this step, or its new
            value as a tensor.
    """
    first = ops.reshape(ops.convert_to_tensor(previous), (-1,))[:1]
    token = ops.sum(ops.cast(ops.isfinite(first), x.dtype))  # A scalar, 0 or 1.
    return x * (1.0 + 0.0 * token)


def memory_groups(sizes, budget):
    """Splits layers, in order, into consecutive groups of at most ``budget`` in all.

    Plain graph mode runs every op as soon as its inputs are ready, so a step over many
    layers may hold every layer's temporaries at once (on BERT-base, sampled: 98 to 419 MiB
    against a largest variable of 89). The fused step there runs one group after the other
    and the layers within a group concurrently: it then holds about one group's temporaries,
    with a few barriers rather than one per layer (ordering every layer made LAMB's graph
    step 1.15x slower).

    Args:
        sizes: list of int, each layer's size in bytes.
        budget: int > 0; a layer larger than it is a group of its own.

    Returns:
        A list of lists of positions into ``sizes``, covering them in order.
    """
    groups, total = [[]], 0
    for position, size in enumerate(sizes):
        if groups[-1] and total + size > budget:
            groups.append([])
            total = 0
        groups[-1].append(position)
        total += size
    return groups


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
        max_ratio: optional Python float capping the ratio ("LAMBC"/"LARC" clipping); a
            layer with a zero norm keeps its ratio of 1 even under a cap below 1.
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
    denominator = update_norm
    if not (isinstance(denominator_offset, float) and denominator_offset == 0.0):
        denominator = denominator + denominator_offset
    if coefficient != 1.0:
        phi = coefficient * phi
    one = ops.ones_like(phi)
    ratio = phi / ops.where(positive, denominator, one)
    if max_ratio is not None:
        ratio = ops.minimum(ratio, max_ratio)
    return ops.where(positive, ratio, one)  # The zero-norm rule holds whatever the cap.


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


class Direction:
    """One term of a layer's update: ``coefficient * scale * build()``.

    Args:
        build: ``build(for_norm) -> tensor``, the direction without ``scale``. With
            ``for_norm=True`` it is the copy whose norm is taken under XLA and should be
            written differently (e.g. multiplying by a reciprocal instead of dividing), so
            that XLA does not merge it with the applied copy (see
            ``LayerwiseOptimizer._apply_layerwise``); the two agree to float rounding.
        scale: positive scalar (Python float or tensor) kept out of the tensor arithmetic,
            e.g. Adam's bias corrections ``sqrt(1 - beta_2**t) / (1 - beta_1**t)``; inside
            weight decay is divided by it, so the layer's direction is
            ``scale * (build() + wd / scale * w)``.
        coefficient: Python float weighting the term (LANS' ``beta_1`` and ``1 - beta_1``).
        decays: bool; True when ``build(for_norm, decay)`` adds ``decay * w`` itself (``decay``
            None for no decay), as a fused kernel does in the same pass.
    """

    def __init__(self, build, scale=1.0, coefficient=1.0, decays=False):
        self.build = build
        self.scale = scale
        self.coefficient = coefficient
        self.decays = decays


class LayerwiseOptimizer(ClipAfterSum, keras.optimizers.Optimizer):
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
        fused: bool or None. True: one call updates every layer (the fused step), recording
            :meth:`layer_statistics`; False: Keras' per-variable ``update_step`` loop.
            ``None`` (default): fused where Keras has the hooks it overrides
            (:func:`tf_lamb.optimizers.seams.fused_supported`). Both give the same numbers.
            True on a Keras without them raises ValueError.
        jit_compile: bool, TensorFlow backend only: XLA-compile the fused step
            (``tf.function(jit_compile=True)``, per device under ``tf.distribute``).
            Default True. False runs it in plain graph mode, where LAMB, LANS and classic
            LARS update each float32 or float64 layer with TensorFlow's fused training
            kernels (LAMB in two passes; LANS in five: the gradient's normalization, Adam's
            and Adagrad's kernels, one descent per term; see
            :mod:`tf_lamb.optimizers.kernels`; so does Keras' per-variable loop outside
            XLA), the layers in groups of at most the largest layer's size (see
            :func:`memory_groups`). On JAX the step is compiled by the caller's ``jax.jit``.
        **kwargs: the ``keras.optimizers.Optimizer`` arguments (``global_clipnorm``, applied
            to the global batch's gradient after the cross-replica sum and accumulation, see
            :class:`~tf_lamb.optimizers.ClipAfterSum`; ``gradient_accumulation_steps``,
            ``use_ema``, ``name``, ...).

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
        fused=None,
        jit_compile=True,
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
        try:
            lower, upper = weight_norm_bounds
        except (TypeError, ValueError):
            raise ValueError(
                "Argument `weight_norm_bounds` must be a pair (lower, upper) with "
                "0 <= lower <= upper (upper may be None). "
                f"Received: weight_norm_bounds={weight_norm_bounds!r}"
            ) from None
        lower = check_real("weight_norm_bounds[0]", lower, 0.0, math.inf)
        if upper is not None:
            upper = check_real(
                "weight_norm_bounds[1]", upper, lower, math.inf, low_open=lower == 0.0
            )
        self.weight_norm_bounds = (lower, upper)
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

    #: Whether the fused step on JAX orders the layers (see :func:`after`): worth it where a
    #: layer's direction is a full-size temporary (LAMB, LANS; LARS turns it off). Under
    #: TensorFlow's XLA the layers are always ordered (see :meth:`_configure_step`).
    _sequence_layers = True

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
            step; with ``weight_decay_mode="decoupled"``, ``||(1 - lr wd) w||``, the decayed
            weights' norm that the ratio uses), ``update_norm`` and ``trust_ratio`` (float32, (L, K), per direction ``k``:
            K = 1 for LAMB and LARS, 2 for LANS). For classic LARS ``update_norm`` is
            ``||g||``. A layer not adapted reads 0, 0 and 1. All zeros before the first
            step; under ``tf.distribute``, the first replica's values (all replicas agree).

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

    def _norm(self, x):
        """A layer's l2 norm by the method this step uses (see :data:`NORM_METHODS`)."""
        return l2_norm(x, self._step_norm_method)

    def _weight_norm(self, variable):
        """``||w||`` of a layer; when the step orders its layers, taken only once the
        previous layer has moved (see :func:`after`), as its gradient is."""
        if self._step_moved is not None:
            return self._norm(after(ops.convert_to_tensor(variable), self._step_moved))
        return self._norm(variable)

    def _configure_step(self, variable, compiled):
        """Picks, at trace time, how this step reduces norms, whether it recomputes
        directions (see :meth:`_apply_layerwise`) and whether it orders the layers.

        Args:
            variable: any variable of the step (its device tells CPU from accelerator).
            compiled: bool, whether this step's own ``jit_compile`` is on; on TensorFlow a
                caller's XLA (``jit_compile=True``, a TPU program) counts too, found here,
                and on JAX it is decided here.
        """
        backend = keras.backend.backend()
        if backend == "tensorflow":
            compiled = compiled or kernels.in_xla_context()
            on_cpu = "CPU" in (getattr(variable, "device", "") or "CPU").upper()
            method = ("fold" if on_cpu else "reduce") if compiled else "l2_loss"
            # Layers in order under XLA (see `after`): unordered, XLA:CPU computed many
            # layers' norms before it moved any (BERT-base: LARS 104 MiB of temporaries
            # against 22, LANS 105 against 22). Plain graph mode runs them in groups
            # instead (see `memory_groups`): ordering every layer there made LAMB 1.15x
            # slower (benchmarks/README.md).
            sequenced = compiled
        elif backend == "jax":
            import jax

            # JAX's XLA:CPU runs this step fastest as plain reductions over directions built
            # once (benchmarks/README.md); on accelerators, two passes as on TensorFlow.
            method = "reduce"
            compiled = jax.default_backend() != "cpu"
            sequenced = self._sequence_layers
        else:
            method = "norm"
            sequenced = False
        self._step_norm_method = method
        self._step_recomputes = compiled
        self._step_sequenced = sequenced
        # When the fused step orders the layers: the first element of the new value of the
        # layer it moved last (see `after`).
        self._step_moved = None
        # TensorFlow outside XLA (plain graph mode or eager): TensorFlow's fused training
        # kernels (see `kernels`), and the layers in groups of at most the largest one's
        # size (see `memory_groups`).
        self._step_in_graph = backend == "tensorflow" and not compiled
        self._step_cache = {}

    def _uses_kernels(self, dtype):
        """Whether this step updates a layer of ``dtype`` with TensorFlow's fused kernels."""
        return self._step_in_graph and keras.backend.standardize_dtype(dtype) in kernels.DTYPES

    def _once_per_step(self, key, compute):
        """``compute()``, evaluated once per step and device for each ``key`` (e.g. the bias
        corrections of a dtype), so a fused step does not repeat scalar work per layer."""
        if key not in self._step_cache:
            self._step_cache[key] = compute()
        return self._step_cache[key]

    def _apply_layerwise(
        self, variable, index, learning_rate, directions, mode="inside", trust_coefficient=1.0
    ):
        """``w <- w - lr * sum_k c_k * ratio_k * u_k`` for the :class:`Direction` s ``u_k``.

        Weight decay is added to each direction (``mode="inside"``) or applied to ``w``
        before the trust ratios are taken (``"decoupled"``, as ``keras.optimizers.Lamb``);
        ``"l2"`` decay was already folded into the gradient by the caller. Every term uses
        the same ``w`` (the LANS authors' kernel, not MXNet's sequential form).

        Under XLA the direction whose norm is taken is built a second time, in a form XLA
        cannot merge with the applied one: each pass then streams the slots from memory and
        neither keeps a direction-sized temporary (two passes, as the exact step needs).
        Elsewhere each direction is built once.

        A 16-bit layer is computed in float32 (:func:`compute_dtype`) and rounded once,
        when its new value is stored.

        Returns:
            The layer's statistics: ``(||w||, [||u_k||], [ratio_k])``, scalars.
        """
        wd = self._decay_rates[index]
        adapts = self._adapts[index]
        dtype = compute_dtype(variable.dtype)
        lr = self._once_per_step(("lr", dtype), lambda: ops.cast(learning_rate, dtype))
        shrink = 1.0 - lr * wd if wd and mode == "decoupled" else None
        weight_norm = 0.0
        if adapts:
            weight_norm = self._weight_norm(variable)
            if shrink is not None:  # ||w (1 - lr wd)||, the decayed weights' norm.
                weight_norm = weight_norm * ops.cast(shrink, weight_norm.dtype)
        # With kernels each term moves w in its own pass once every direction is built (all
        # from the same w); otherwise the terms are summed as they come.
        by_kernel = shrink is None and self._uses_kernels(variable.dtype)
        kernel_terms, step, norms, ratios = [], None, [], []
        for direction in directions:
            decay = wd / direction.scale if wd and mode == "inside" else None

            def build(for_norm, direction=direction, decay=decay):
                if direction.decays:
                    return direction.build(for_norm, decay)
                u = direction.build(for_norm)
                return u if decay is None else u + decay * as_compute(variable)

            u = build(False)
            factor = lr * (direction.coefficient * direction.scale)
            if adapts:
                for_norm = build(True) if self._step_recomputes else u
                norm = self._norm(for_norm) * ops.cast(direction.scale, dtype)
                norms.append(norm)
                ratios.append(self._trust_ratio(index, weight_norm, norm, trust_coefficient))
                factor = factor * ops.cast(ratios[-1], dtype)
            if by_kernel:
                kernel_terms.append((factor, u))
            else:
                term = ops.cast(factor, dtype) * u
                step = term if step is None else step + term
        if by_kernel:
            for factor, u in kernel_terms:  # w - factor * u in one pass each.
                kernels.apply_step(variable, factor, u)
            return weight_norm, norms, ratios
        self._move(variable, step, shrink)
        return weight_norm, norms, ratios

    def _store(self, variable, value):
        """``variable <- value``, rounded to the variable's dtype where they differ (a
        16-bit slot from its float32 update)."""
        if keras.backend.standardize_dtype(value.dtype) != keras.backend.standardize_dtype(
            variable.dtype
        ):
            value = ops.cast(value, variable.dtype)
        self.assign(variable, value)

    def _update_moments(self, m, v, g, beta_1, beta_2):
        """Adam's moments from ``g`` (a tensor of the layer's compute dtype): ``m <- beta_1 m
        + (1 - beta_1) g`` and ``v <- beta_2 v + (1 - beta_2) g**2``, stored in their slots;
        returns the stored values, read back as compute-dtype tensors.

        ``beta * m + (1 - beta) * g`` rather than ``m + (g - m) * (1 - beta)``: the latter
        cancels when ``beta`` is small (exact sign SGD at ``beta = 0`` needs ``m = g``).
        """
        self._store(m, beta_1 * as_compute(m) + (1.0 - beta_1) * g)
        self._store(v, beta_2 * as_compute(v) + (1.0 - beta_2) * ops.square(g))
        return as_compute(m), as_compute(v)

    def _move(self, variable, step, shrink=None):
        """``w <- w * shrink - step`` (``shrink`` None: ``w - step``), ``step`` in the layer's
        compute dtype; a 16-bit ``w`` is rounded once, from the float32 result."""
        if shrink is None and keras.backend.standardize_dtype(variable.dtype) not in HALF_DTYPES:
            self.assign_sub(variable, step)
        else:
            w = as_compute(variable)
            self._store(variable, w - step if shrink is None else w * shrink - step)

    def update_step(self, gradient, variable, learning_rate):
        """Keras' per-variable step (the fallback path): one layer through ``_update_layer``."""
        index = self._get_variable_index(variable)
        self._configure_step(variable, compiled=False)
        stats = self._update_layer(
            index,
            gradient,
            variable,
            self._slots(index),
            learning_rate,
            ops.cast(self.iterations + 1, compute_dtype(variable.dtype)),
        )
        self._record_statistics(self._layer_statistics, [index], [stats])

    def _update_layer(self, index, gradient, variable, slots, learning_rate, t):
        """One layer's step; returns ``(||w||, [||u_k||], [ratio_k])`` (see
        :meth:`_apply_layerwise`). Implemented by each optimizer.

        Args:
            index: int, the layer's position in build order.
            gradient: its gradient (dense or ``IndexedSlices``).
            variable: the variable (on TensorFlow under ``tf.distribute``, one device's copy).
            slots: tuple of its slot variables, as :meth:`_slots` gives them (same device).
            learning_rate: scalar tensor.
            t: the 1-based step, a scalar tensor of the layer's :func:`compute_dtype`.
        """
        raise NotImplementedError

    def _slots(self, index):
        """The slot variables of layer ``index``, a tuple. Implemented by each optimizer."""
        raise NotImplementedError

    def _record_statistics(self, statistics, indices, stats):
        """Writes the rows ``indices`` of the statistics slot: one scatter per step."""
        k = self.num_directions
        rows = []
        for weight_norm, norms, ratios in stats:
            values = [weight_norm] + (list(norms) or [0.0] * k) + (list(ratios) or [1.0] * k)
            rows.append(ops.stack([ops.cast(x, "float32") for x in values]))
        positions = ops.expand_dims(ops.convert_to_tensor(indices, "int32"), -1)
        self.assign(statistics, ops.scatter_update(statistics, positions, ops.stack(rows)))

    def _fused_update(
        self, indices, grads, variables, slots, statistics, learning_rate, iterations, compiled
    ):
        """The fused step: every layer in one call, then one write of the statistics.

        Args:
            indices: list of int, each variable's position in build order.
            grads, variables, slots: lists aligned with ``indices``.
            statistics: the statistics slot (one device's copy).
            learning_rate: scalar tensor.
            iterations: the optimizer's ``_iterations`` variable (one device's copy), which
                counts micro-steps under gradient accumulation.
            compiled: bool, whether XLA compiles this step.
        """
        self._configure_step(variables[0], compiled)
        if self.gradient_accumulation_steps:  # As Keras' `iterations` property.
            iterations = ops.floor_divide(iterations, self.gradient_accumulation_steps)
        stats, previous, moved = [], None, []
        for group in self._groups(variables):
            with self._after_group(moved):
                for position in group:
                    grad, variable = grads[position], variables[position]
                    dtype = compute_dtype(variable.dtype)
                    if self._step_sequenced and previous is not None:
                        # A tensor (its first element), never the variable: Keras would
                        # track a variable held here as the optimizer's, into checkpoints.
                        moved_value = ops.convert_to_tensor(previous)
                        self._step_moved = ops.reshape(moved_value, (-1,))[:1]
                        grad = after(dense_gradient(grad, dtype), self._step_moved)
                    previous = variable
                    t = self._once_per_step(
                        ("t", dtype), lambda: ops.cast(iterations + 1, dtype)
                    )
                    layer = (indices[position], grad, variable, slots[position])
                    stats.append(self._update_layer(*layer, learning_rate, t))
            moved = [variables[p] for p in group]
        self._record_statistics(statistics, indices, stats)

    def _groups(self, variables):
        """The fused step's layer groups (see :func:`memory_groups`): in graph mode on
        TensorFlow, of at most the largest layer's size; otherwise one group of all."""
        if not self._step_in_graph:
            return [list(range(len(variables)))]
        sizes = [
            math.prod(v.shape) * np.dtype(keras.backend.standardize_dtype(v.dtype)).itemsize
            for v in variables
        ]
        return memory_groups(sizes, max(sizes))

    @staticmethod
    def _after_group(group):
        """A context in which TensorFlow ops wait until every variable of ``group`` (the
        previous group, already assigned) has its new value; an empty group: no wait."""
        if not group:
            return contextlib.nullcontext()
        import tensorflow as tf

        return tf.control_dependencies([tf.convert_to_tensor(v) for v in group])

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        if keras.backend.backend() == "tensorflow" or not self._fused_active:
            # TensorFlow: all-reduce, clip, then merge_call into `_distributed_tf_update_step`;
            # elsewhere: clip (ClipAfterSum), then Keras' per-variable loop.
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        grads = self._clip_by_global_norm(grads)
        indices = [self._get_variable_index(v) for v in trainable_variables]
        self._fused_update(
            indices,
            grads,
            list(trainable_variables),
            [self._slots(i) for i in indices],
            self._layer_statistics,
            learning_rate,
            self._iterations,
            keras.backend.backend() == "jax",
        )

    def _distributed_tf_update_step(self, distribution, grads_and_vars, learning_rate):
        """TensorFlow backend, cross-replica context: the fused step once per device.

        Keras calls ``distribution.extended.update`` once per variable; here one call covers
        all of them. ``extended.update`` runs ``update`` on each device with that device's
        copy of the first variable (on a TPU, inside the replicated XLA program, with the
        variable itself); every other variable, slot and gradient is resolved to the same
        device's copy, and the step is XLA-compiled there when ``jit_compile``.
        """
        if not self._fused_active:
            return super()._distributed_tf_update_step(
                distribution, grads_and_vars, learning_rate
            )
        import tensorflow as tf

        grads = [_with_tensor_components(g) for g, _ in grads_and_vars]
        variables = [v for _, v in grads_and_vars]
        indices = [self._get_variable_index(v) for v in variables]
        state = [[s.value for s in self._slots(i)] for i in indices]
        statistics = self._layer_statistics.value
        iterations = self._iterations.value
        anchor = variables[0]

        def update(anchor_copy, grads, learning_rate):
            if anchor_copy is anchor:  # One copy: one device, or a TPU replica context.
                local = lambda x: x  # noqa: E731
            else:
                copies = distribution.experimental_local_results(anchor)
                device = next(i for i, c in enumerate(copies) if c is anchor_copy)
                local = lambda x: distribution.experimental_local_results(x)[device]  # noqa: E731
            in_tpu_program = isinstance(distribution, tf.distribute.TPUStrategy)
            compile_here = self.jit_compile and not in_tpu_program
            args = (
                indices,
                grads,
                [local(v) for v in variables],
                [[local(s) for s in slots] for slots in state],
                local(statistics),
                tf.convert_to_tensor(learning_rate),  # May be a Keras variable: read it here.
                local(iterations),
                compile_here or in_tpu_program,
            )
            if not compile_here:  # No XLA asked for, or already inside a TPU program.
                return self._fused_update(*args)
            if self._compiled_step is None:
                self._compiled_step = _Compiled(
                    tf.function(self._fused_update, jit_compile=True)
                )
            return self._compiled_step.function(*args)

        distribution.extended.update(anchor, update, args=(grads, learning_rate), group=False)

    def _decay_in_gradient(self, gradient, variable, index):
        """``g + wd * w`` (the ``"l2"`` placement and both LARS forms), in ``g``'s dtype."""
        wd = self._decay_rates[index]
        return gradient + wd * as_compute(variable) if wd else gradient

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
            }
        )
        return config


def _with_tensor_components(gradient):
    """A ``tf.IndexedSlices`` gradient with tensors for components, else ``gradient``.

    Slices built from Python tuples (``indices=(0, 2)``, as Keras' own sparse tests make them)
    cannot be passed to a ``tf.function``, which the XLA-compiled step is.
    """
    import tensorflow as tf

    if not isinstance(gradient, tf.IndexedSlices):
        return gradient
    shape = gradient.dense_shape
    return tf.IndexedSlices(
        tf.convert_to_tensor(gradient.values),
        tf.convert_to_tensor(gradient.indices),
        None if shape is None else tf.convert_to_tensor(shape),
    )


class _Compiled:
    """Holds the compiled fused step out of sight of TensorFlow's object tracking (an
    optimizer attribute that is a ``tf.function`` would be exported with a SavedModel)."""

    def __init__(self, function):
        self.function = function
