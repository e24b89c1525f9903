"""Keras' private optimizer hooks that tf_lamb overrides, behind one capability check.

The fused step (all layers in one call) and :class:`~tf_lamb.optimizers.ClipAfterSum` (the
global batch's gradient clipped after the cross-replica sum) override private methods of
``keras.optimizers.Optimizer``. Rather than trusting a range of Keras versions, tf_lamb checks
that each hook exists and takes the parameters it is called with (every release from 3.10 on,
and keras-nightly, has them). A release that drops a hook or changes its parameters turns the
fused step off and makes ``global_clipnorm`` raise at construction. A release that keeps a
hook's parameters but changes what Keras does around it is not seen here: CI runs the test
suite against keras-nightly to catch that before the release.
"""

import functools
import inspect

import keras

#: Hook -> its parameters, on every backend: the per-step entry point the fused step
#: replaces and the slot lookup it uses.
FUSED_HOOKS = {
    "_backend_update_step": ("self", "grads", "trainable_variables", "learning_rate"),
    "_get_variable_index": ("self", "variable"),
}

#: Hook -> its parameters, on every backend: the clip ``ClipAfterSum`` turns off and the
#: step entry where it clips instead (off TensorFlow).
CLIP_HOOKS = {
    "_clip_gradients": ("self", "grads"),
    "_backend_update_step": ("self", "grads", "trainable_variables", "learning_rate"),
}

#: More hooks on the TensorFlow backend: the cross-replica update (one call per device
#: instead of one per variable) for the fused step, the all-reduce the clip follows.
TF_FUSED_HOOKS = {
    "_distributed_tf_update_step": ("self", "distribution", "grads_and_vars", "learning_rate"),
}
TF_CLIP_HOOKS = {"_all_reduce_sum_gradients": ("self", "grads_and_vars")}


def missing_hooks(optimizer_class=None, clip_only=False):
    """What this Keras lacks of the hooks tf_lamb overrides.

    Args:
        optimizer_class: the class to inspect; default ``keras.optimizers.Optimizer`` (the
            current backend's).
        clip_only: only the hooks :class:`~tf_lamb.optimizers.ClipAfterSum` needs.

    Returns:
        A list of str, one per hook that is missing or takes other parameters (e.g.
        ``"_clip_gradients(self, grads, norm) instead of (self, grads)"``); empty when every
        hook is there as tf_lamb calls it.
    """
    base = optimizer_class or keras.optimizers.Optimizer
    tensorflow = keras.backend.backend() == "tensorflow"
    hooks = dict(CLIP_HOOKS, **(TF_CLIP_HOOKS if tensorflow else {}))
    if not clip_only:
        hooks.update(FUSED_HOOKS, **(TF_FUSED_HOOKS if tensorflow else {}))
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
def _missing_for(backend, version, clip_only):
    return tuple(missing_hooks(clip_only=clip_only))


def fused_supported():
    """Whether this Keras has every hook the fused step and ``ClipAfterSum`` override.

    Returns:
        bool. When False, the optimizers run Keras' per-variable ``update_step`` loop (the
        same numbers).
    """
    return not _missing_for(keras.backend.backend(), keras.version(), False)


def clip_supported():
    """Whether this Keras has the hooks ``ClipAfterSum`` overrides; when False,
    ``global_clipnorm`` raises at construction."""
    return not _missing_for(keras.backend.backend(), keras.version(), True)


def describe_missing(clip_only=False):
    """One sentence naming this Keras version and the hooks it lacks (for error messages)."""
    problems = "; ".join(_missing_for(keras.backend.backend(), keras.version(), clip_only))
    return f"Keras {keras.version()} changed private optimizer hooks tf_lamb needs: {problems}."
