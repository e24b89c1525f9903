"""The recipes' one factory: any tf_lamb optimizer, Keras baseline or schedule, by name.

Every recipe builds its optimizer with :func:`build_optimizer` and its learning-rate schedule
with :func:`build_schedule`, and scales a base learning rate with :func:`scale_learning_rate`
(the rules of :mod:`tf_lamb.schedules`). A recipe lists its reference optimizers first and
accepts every other name here, so an optimizer added to :data:`OPTIMIZERS` reaches all of
them: its settings are the recipe's, passed on where the constructor takes them.
"""

import inspect

import keras

import tf_lamb
from tf_lamb.optimizers.clipping import ClipAfterSum
from tf_lamb.optimizers.exclusions import Exclusions


class AdamW(ClipAfterSum, keras.optimizers.AdamW):
    """Keras' AdamW whose ``global_clipnorm`` clips the global batch's gradient, as LAMB's
    does, so the baseline does not depend on the replica count."""


class SGD(ClipAfterSum, keras.optimizers.SGD):
    """Keras' SGD with the same global clipping as :class:`AdamW`."""


def _exclude(optimizer, patterns, variables):
    """Keras' ``exclude_from_weight_decay`` for a Keras optimizer: the variables whose path
    matches ``patterns`` by identity when ``variables`` are given (Keras matches
    ``variable.name`` only, ``"gamma"`` for a LayerNorm scale), else by name."""
    if patterns and variables is not None:
        matcher = Exclusions(list(patterns), "exclude_from_weight_decay")
        optimizer.exclude_from_weight_decay(var_list=[v for v in variables if matcher.matches(v)])
    elif patterns:
        optimizer.exclude_from_weight_decay(var_names=list(patterns))
    return optimizer


def momentum_sgd(learning_rate, weight_decay=0.0, momentum=0.9, nesterov=False,
                 weight_decay_mode="l2", exclude_from_weight_decay=(), variables=None,
                 global_clipnorm=None):
    """Heavy-ball momentum SGD, the learning rate inside the velocity.

    Args:
        weight_decay_mode: ``"l2"``: the decay added to the gradient (Goyal et al. 2017,
            Sec. 2.1; ``torch.optim.SGD``), built as ``tf_lamb.LARS`` with every layer's trust
            ratio fixed at 1. ``"decoupled"``: Keras' ``SGD`` (the weights shrink by ``lr *
            weight_decay`` apart from the gradient).
        The others: as :func:`build_optimizer`.

    Raises:
        ValueError: another ``weight_decay_mode``.
    """
    arguments = dict(learning_rate=learning_rate, weight_decay=weight_decay, momentum=momentum,
                     nesterov=nesterov, global_clipnorm=global_clipnorm)
    if weight_decay_mode == "l2":
        return tf_lamb.LARS(exclude_from_weight_decay=list(exclude_from_weight_decay),
                            exclude_from_layer_adaptation=lambda v: True, **arguments)
    if weight_decay_mode == "decoupled":
        return _exclude(SGD(**arguments), exclude_from_weight_decay, variables)
    raise ValueError("weight_decay_mode must be 'l2' or 'decoupled' for momentum. Received: "
                     f"{weight_decay_mode!r}")


#: name -> (constructor, the settings it gets unless the recipe gives them). The defaults are
#: the references' where the class' own differ: AdamW with LAMB's moments (epsilon 1e-6, so
#: it differs from LAMB by the trust ratio and where decay enters); LANS adapting every layer,
#: the no-decay group included (the LANS authors' code).
OPTIMIZERS = {
    "lamb": (tf_lamb.LAMB, {}),
    "lans": (tf_lamb.LANS, {"exclude_from_layer_adaptation": []}),
    "lars": (tf_lamb.LARS, {}),
    "larc": (tf_lamb.LARC, {}),
    "adamw": (AdamW, {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-6}),
    "momentum": (momentum_sgd, {}),
}

#: The arguments every Keras optimizer takes (``global_clipnorm``...), also through ``**kwargs``.
_KERAS_ARGUMENTS = set(inspect.signature(keras.optimizers.SGD).parameters) & set(
    inspect.signature(keras.optimizers.AdamW).parameters)


def _parameters(constructor):
    """The keyword arguments ``constructor`` takes: a mixin's ``(*args, **kwargs)`` is looked
    through to the Keras class below it, and ``**kwargs`` stands for Keras' own arguments."""
    for target in getattr(constructor, "__mro__", [constructor]):
        parameters = inspect.signature(target).parameters
        if not any(p.kind == p.VAR_POSITIONAL for p in parameters.values()):
            break
    accepted = set(parameters)
    return accepted | _KERAS_ARGUMENTS if "kwargs" in accepted else accepted


def names(first=()):
    """Every optimizer name, ``first`` (a recipe's references) leading."""
    return tuple(first) + tuple(n for n in OPTIMIZERS if n not in first)


def adapts_layers(name):
    """Whether the optimizer ``name`` has trust ratios to report (a layer-wise class)."""
    constructor = OPTIMIZERS[name][0]
    return isinstance(constructor, type) and issubclass(
        constructor, tf_lamb.optimizers.LayerwiseOptimizer)


def build_optimizer(name, learning_rate, *, weight_decay=0.0, exclude_from_weight_decay=(),
                    exclude_from_layer_adaptation=None, variables=None, flag="--optimizer",
                    **settings):
    """The optimizer ``name`` with a recipe's settings.

    Args:
        name: a key of :data:`OPTIMIZERS`.
        learning_rate: float or ``keras.optimizers.schedules.LearningRateSchedule`` (steps).
        weight_decay: float >= 0.
        exclude_from_weight_decay: regexes matched on variable paths (tf_lamb's rule, on
            every backend), e.g. BERT's ``["LayerNorm", "layer_norm", "bias"]``.
        exclude_from_layer_adaptation: for layer-wise optimizers, what skips the trust ratio;
            None: the optimizer's reference rule (:data:`OPTIMIZERS`, else the class' own).
        variables: the model's trainable variables, for Keras' baselines (see
            :func:`_exclude`); without them, exclusions match by name.
        flag: the recipe's flag naming the optimizer, for the error.
        **settings: ``beta_1``, ``momentum``, ``trust_coefficient``, ``global_clipnorm``...:
            each passed to the constructors that take an argument of that name and left out
            for the others (a recipe keeps one set of settings for all its optimizers); None:
            the default. Matched by name only: ``epsilon`` is Adam's for LAMB and AdamW and
            the denominator's for LARS and LARC, so a recipe leaves it None unless its
            configuration means one optimizer.

    Returns:
        A ``keras.optimizers.Optimizer``.

    Raises:
        ValueError: an unknown ``name`` (the message names ``flag`` and the allowed names),
            or a setting out of its range (from the constructor).
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"{flag} must be one of {', '.join(OPTIMIZERS)}. Received: {name!r}")
    constructor, defaults = OPTIMIZERS[name]
    arguments = dict(defaults, exclude_from_weight_decay=list(exclude_from_weight_decay),
                     variables=variables)
    arguments.update((k, v) for k, v in settings.items() if v is not None)
    if exclude_from_layer_adaptation is not None:
        arguments["exclude_from_layer_adaptation"] = exclude_from_layer_adaptation
    accepted = _parameters(constructor)
    optimizer = constructor(learning_rate=learning_rate, weight_decay=weight_decay,
                            **{k: v for k, v in arguments.items() if k in accepted})
    if "exclude_from_weight_decay" not in accepted:  # a Keras class
        _exclude(optimizer, exclude_from_weight_decay, variables)
    return optimizer


#: name -> the ``tf_lamb.schedules`` class; :func:`build_schedule` passes the arguments on.
SCHEDULES = {
    "polynomial": tf_lamb.schedules.PolynomialDecayWithWarmup,
    "legw": tf_lamb.schedules.LEGW,
    "warmup_constant_decay": tf_lamb.schedules.WarmupConstantDecay,
    "goyal": tf_lamb.schedules.GoyalStepDecay,
}


def build_schedule(name, **arguments):
    """The learning-rate schedule ``name``, a function of the 0-based optimizer step.

    Args:
        name: a key of :data:`SCHEDULES`. ``"legw"`` with ``base_batch_size`` among the
            arguments builds it from the base batch's settings
            (``tf_lamb.schedules.LEGW.from_base``: peak x sqrt(k), warmup epochs x k).
        **arguments: the class' constructor arguments (steps for ``polynomial``, ``legw``
            and ``warmup_constant_decay``; epochs and ``steps_per_epoch`` for ``goyal`` and
            ``LEGW.from_base``).

    Returns:
        A ``keras.optimizers.schedules.LearningRateSchedule``.

    Raises:
        ValueError: an unknown ``name``, or an argument out of its range (from the class; the
            message names the argument).
    """
    if name not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}. Received: {name!r}")
    if name == "legw" and "base_batch_size" in arguments:
        return tf_lamb.schedules.LEGW.from_base(**arguments)
    return SCHEDULES[name](**arguments)


#: The batch-size scaling rules of ``tf_lamb.schedules`` (``sqrt``, ``linear``).
RULES = tuple(tf_lamb.schedules.SCALING_RULES)
#: The ways a peak rate follows the global batch: ``none`` keeps the given rate.
SCALING_RULES = ("none",) + RULES


def scale_learning_rate(rule, base_learning_rate, base_batch_size, batch_size):
    """``base_learning_rate``, tuned at ``base_batch_size``, carried to ``batch_size`` (global
    batches) by ``rule``: ``sqrt`` or ``linear`` (``tf_lamb.schedules``), or ``none``.

    Raises:
        ValueError: an unknown ``rule``, or a non-positive rate or batch.
    """
    if rule == "none":
        return float(base_learning_rate)
    if rule not in tf_lamb.schedules.SCALING_RULES:
        raise ValueError(f"scaling must be one of {', '.join(SCALING_RULES)}. Received: "
                         f"{rule!r}")
    return tf_lamb.schedules.SCALING_RULES[rule](base_learning_rate, base_batch_size, batch_size)
