"""Keras' private optimizer hooks that tf_lamb overrides, behind one capability check.

The fused step (all layers in one call) and :class:`~tf_lamb.optimizers.ClipAfterSum` (the
global batch's gradient clipped after the cross-replica sum) override private methods of
``keras.optimizers.Optimizer``. Rather than trusting a range of Keras versions, tf_lamb checks
that each hook exists and takes the parameters it is called with; a Keras release that keeps
them (as every release from 3.10 on has) needs no new tf_lamb, and one that changes them
turns the fused step off and makes ``global_clipnorm`` raise at construction, so its meaning
never changes silently.
"""

import functools
import inspect

import keras

#: Hook -> its parameters, on every backend: the per-step entry point the fused step
#: replaces, the clip that ``ClipAfterSum`` moves after the sum, and the slot lookup.
HOOKS = {
    "_backend_update_step": ("self", "grads", "trainable_variables", "learning_rate"),
    "_clip_gradients": ("self", "grads"),
    "_get_variable_index": ("self", "variable"),
}

#: Hook -> its parameters, on the TensorFlow backend only: the cross-replica update (one
#: call per device instead of one per variable) and the all-reduce the clip follows.
TF_HOOKS = {
    "_distributed_tf_update_step": ("self", "distribution", "grads_and_vars", "learning_rate"),
    "_all_reduce_sum_gradients": ("self", "grads_and_vars"),
}


def missing_hooks(optimizer_class=None):
    """What this Keras lacks of the hooks tf_lamb overrides.

    Args:
        optimizer_class: the class to inspect; default ``keras.optimizers.Optimizer`` (the
            current backend's).

    Returns:
        A list of str, one per hook that is missing or takes other parameters (e.g.
        ``"_clip_gradients(self, grads, norm) instead of (self, grads)"``); empty when every
        hook is there as tf_lamb calls it.
    """
    base = optimizer_class or keras.optimizers.Optimizer
    hooks = dict(HOOKS)
    if keras.backend.backend() == "tensorflow":
        hooks.update(TF_HOOKS)
    problems = []
    for name, expected in hooks.items():
        method = getattr(base, name, None)
        if not callable(method):
            problems.append(f"{name} is missing")
            continue
        found = tuple(inspect.signature(method).parameters)
        if found != expected:
            problems.append(f"{name}({', '.join(found)}) instead of ({', '.join(expected)})")
    return problems


@functools.lru_cache(maxsize=None)
def _missing_for(backend, version):
    return tuple(missing_hooks())


def fused_supported():
    """Whether this Keras has every hook the fused step and ``ClipAfterSum`` override.

    Returns:
        bool. When False, the optimizers run Keras' per-variable ``update_step`` loop (the
        same numbers) and ``global_clipnorm`` raises at construction.
    """
    return not _missing_for(keras.backend.backend(), keras.version())


def describe_missing():
    """One sentence naming this Keras version and the hooks it lacks (for error messages)."""
    problems = "; ".join(_missing_for(keras.backend.backend(), keras.version()))
    return f"Keras {keras.version()} changed private optimizer hooks tf_lamb needs: {problems}."
