"""Keras 3's ``LossScaleOptimizer`` tests, with tf_lamb's optimizers inside.

Peer file: keras-team/keras, ``keras/src/optimizers/loss_scale_optimizer_test.py``, read at
commit 3422977a5e38fb2f7709aaa9a08e47f0c43d0f60 (identical at tag v3.15.1, the installed
Keras).

Mapping: Keras wraps ``SGD``; here the inner optimizer is

- ``"sgd"``: ``tf_lamb.LARS`` with ``momentum=0`` and every layer excluded from layer
  adaptation (trust ratio 1), which is exactly SGD, so Keras' golden values
  (``[0.5, -1.0, -0.5, 3.0]`` after one step at learning rate 0.5) carry over unchanged;
- ``"lamb"``, ``"lars"``, ``"lans"``: the layer-wise optimizers at learning rate 0.5, where
  the expected weights are those of the same optimizer, unwrapped, applying the unscaled
  gradient (for the numeric tests; the loss-scale bookkeeping tests assert Keras' numbers).

``test_config`` runs Keras' ``run_class_serialization_test`` (re-implemented in
``test_keras_lamb``) on the wrapper around a LARS with SGD's non-default settings
(momentum 0.06, Nesterov, weight decay 0.004) and around a LAMB.
``test_deserialization_backwards_compatibility`` uses a serialized ``tf_lamb.LAMB`` as the
inner optimizer. The stateless cases run where Keras runs them (JAX, PyTorch); the stateful
ones everywhere but JAX.
"""

import re

import keras
import numpy as np
import pytest
from keras import ops
from keras.optimizers import LossScaleOptimizer

import tf_lamb
from tests.conformance.test_keras_lamb import check_class_serialization

#: Tests of LossScaleOptimizer behaviour that Keras added in 3.12 (arguments it refuses, a
#: shorter config, apply() without variables): Keras' own, so skipped on older Keras.
KERAS_3_12 = pytest.mark.skipif(
    tuple(int(p) for p in re.findall(r"\d+", keras.version())[:2]) < (3, 12),
    reason="Keras' LossScaleOptimizer gained this in 3.12 (the ported test is 3.15's)",
)


BACKEND = keras.backend.backend()

CLASSES = {"lamb": tf_lamb.LAMB, "lars": tf_lamb.LARS, "lans": tf_lamb.LANS}
INNER = ["sgd", "lamb", "lars", "lans"]
# The loss-scale bookkeeping (scale, iterations) does not depend on the inner optimizer's
# arithmetic: those tests run on SGD and LAMB only.
BOOKKEEPING = ["sgd", "lamb"]
STATELESS = [pytest.param(True, id="stateless"), pytest.param(False, id="stateful")]
SGD_GOLDEN = [0.5, -1.0, -0.5, 3.0]


def make(name, **kwargs):
    """An inner optimizer; ``"sgd"`` is LARS reduced to plain SGD (no momentum, ratio 1)."""
    if name == "sgd":
        return tf_lamb.LARS(momentum=0.0, exclude_from_layer_adaptation=[".*"], **kwargs)
    return CLASSES[name](**kwargs)


def skip_for_stateless(stateless):
    if not stateless and BACKEND == "jax":
        pytest.skip("LossScaleOptimizer must use stateless_apply with JAX.")
    if stateless and BACKEND == "tensorflow":
        pytest.skip("stateless_apply is not supported with the TF backend.")


def expected_step(name, grads, initial=(1.0, 2.0, 3.0, 4.0), learning_rate=0.5):
    """Weights after one step of the unwrapped inner optimizer on the unscaled ``grads``."""
    if name == "sgd":
        return SGD_GOLDEN
    variable = keras.Variable(list(initial))
    make(name, learning_rate=learning_rate).apply([ops.array(grads)], [variable])
    return ops.convert_to_numpy(variable)


def assert_close(actual, expected, rtol=1e-6, atol=1e-6):
    np.testing.assert_allclose(
        ops.convert_to_numpy(actual), ops.convert_to_numpy(expected), rtol=rtol, atol=atol
    )


def apply_once(optimizer, grads, variables, stateless):
    if stateless:
        optimizer.build(variables)
        variables, _ = optimizer.stateless_apply(
            [v.value for v in optimizer.variables], grads, [v.value for v in variables]
        )
    else:
        optimizer.apply(grads, variables)
    return variables


@pytest.mark.parametrize("inner", ["lars_sgd_settings", "lamb"])
def test_config(inner):
    if inner == "lamb":
        inner_optimizer = tf_lamb.LAMB(
            learning_rate=0.5, beta_1=0.8, weight_decay=0.004, weight_decay_mode="decoupled"
        )
    else:
        inner_optimizer = tf_lamb.LARS(
            learning_rate=0.5, momentum=0.06, nesterov=True, weight_decay=0.004
        )
    optimizer = LossScaleOptimizer(inner_optimizer)
    check_class_serialization(optimizer)


@KERAS_3_12
@pytest.mark.parametrize("name", INNER)
def test_apply_with_no_vars(name):
    skip_for_stateless(False)

    optimizer = LossScaleOptimizer(make(name, learning_rate=0.5))
    grads = [ops.array([1.0, 6.0, 7.0, 2.0]) * optimizer.initial_scale]
    variables = [keras.Variable([1.0, 2.0, 3.0, 4.0])]
    optimizer.build(variables)
    optimizer.apply(grads)
    assert_close(variables[0], expected_step(name, [1.0, 6.0, 7.0, 2.0]), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("stateless", STATELESS)
@pytest.mark.parametrize("name", INNER)
def test_finite_step(name, stateless):
    skip_for_stateless(stateless)

    optimizer = LossScaleOptimizer(make(name, learning_rate=0.5))
    grads = [ops.array([1.0, 6.0, 7.0, 2.0]) * optimizer.initial_scale]
    variables = [keras.Variable([1.0, 2.0, 3.0, 4.0])]
    variables = apply_once(optimizer, grads, variables, stateless)
    assert_close(variables[0], expected_step(name, [1.0, 6.0, 7.0, 2.0]), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("stateless", STATELESS)
@pytest.mark.parametrize("name", INNER)
def test_finite_step_with_inner_loss_scale(name, stateless):
    skip_for_stateless(stateless)

    # The inner optimizer's own loss scale does not interfere with the update.
    optimizer = LossScaleOptimizer(make(name, learning_rate=0.5, loss_scale_factor=100))
    grads = [ops.array([1.0, 6.0, 7.0, 2.0]) * optimizer.initial_scale]
    variables = [keras.Variable([1.0, 2.0, 3.0, 4.0])]
    variables = apply_once(optimizer, grads, variables, stateless)
    assert_close(variables[0], expected_step(name, [1.0, 6.0, 7.0, 2.0]), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("stateless", STATELESS)
@pytest.mark.parametrize("name", INNER)
def test_infinite_step(name, stateless):
    skip_for_stateless(stateless)

    optimizer = LossScaleOptimizer(make(name, learning_rate=0.5))
    grads = [ops.array([np.inf, np.inf, np.inf, np.inf])]
    variables = [keras.Variable([1.0, 2.0, 3.0, 4.0])]
    variables = apply_once(optimizer, grads, variables, stateless)
    assert_close(variables[0], [1.0, 2.0, 3.0, 4.0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("stateless", STATELESS)
@pytest.mark.parametrize("name", BOOKKEEPING)
def test_finite_step_with_overwrite(name, stateless):
    skip_for_stateless(stateless)

    optimizer = LossScaleOptimizer(make(name, learning_rate=0.5))
    grads = [ops.array([1.0, 6.0, 7.0, 2.0])]
    variables = [keras.Variable([1.0, 2.0, 3.0, 4.0])]
    variables[0].overwrite_with_gradient = True
    variables = apply_once(optimizer, grads, variables, stateless)
    assert_close(variables[0], grads[0])


def _run(optimizer, grads, variables, steps, stateless):
    optimizer.build(variables)
    opt_var_values = [v.value for v in optimizer.variables]
    for _ in range(steps):
        if stateless:
            _, opt_var_values = optimizer.stateless_apply(
                opt_var_values, grads, [v.value for v in variables]
            )
            for ref_v, v in zip(optimizer.variables, opt_var_values):
                ref_v.assign(v)
        else:
            optimizer.apply(grads, variables)


@pytest.mark.parametrize("stateless", STATELESS)
@pytest.mark.parametrize("name", BOOKKEEPING)
def test_downscaling(name, stateless):
    skip_for_stateless(stateless)

    optimizer = LossScaleOptimizer(make(name, learning_rate=0.5), initial_scale=400.0)
    variables = [keras.Variable([1.0, 2.0, 3.0, 4.0])]
    _run(optimizer, [ops.array([np.inf, np.inf, np.inf, np.inf])], variables, 4, stateless)
    assert_close(optimizer.scale_loss(1.0), 25.0)


@pytest.mark.parametrize("stateless", STATELESS)
@pytest.mark.parametrize("name", BOOKKEEPING)
def test_upscaling(name, stateless):
    skip_for_stateless(stateless)

    optimizer = LossScaleOptimizer(
        make(name, learning_rate=0.5), initial_scale=2.0, dynamic_growth_steps=2
    )
    variables = [keras.Variable([1.0, 2.0, 3.0, 4.0])]
    _run(optimizer, [ops.array([1.0, 6.0, 7.0, 2.0])], variables, 8, stateless)
    assert_close(optimizer.scale_loss(1.0), 32.0)


@pytest.mark.parametrize("stateless", STATELESS)
@pytest.mark.parametrize("name", BOOKKEEPING)
def test_iterations_update(name, stateless):
    skip_for_stateless(stateless)

    optimizer = LossScaleOptimizer(make(name, learning_rate=0.5))
    variables = [keras.Variable([1.0, 2.0, 3.0, 4.0])]
    optimizer.build(variables)
    opt_var_values = [v.value for v in optimizer.variables]
    grads = [ops.array([1.0, 6.0, 7.0, 2.0])]

    assert optimizer.iterations.value == 0

    for i in range(3):
        if stateless:
            _, opt_var_values = optimizer.stateless_apply(
                opt_var_values, grads, [v.value for v in variables]
            )
            for ref_v, v in zip(optimizer.variables, opt_var_values):
                ref_v.assign(v)
        else:
            optimizer.apply(grads, variables)
        assert optimizer.iterations.value == i + 1


@KERAS_3_12
@pytest.mark.parametrize("name", INNER)
def test_serialization(name):
    optimizer = LossScaleOptimizer(
        make(name, learning_rate=0.5),
        initial_scale=3.0,
        dynamic_growth_steps=2,
        name="test_opt",
    )
    config = optimizer.get_config()
    assert len(config) == 4
    assert config["name"] == "test_opt"
    assert config["initial_scale"] == 3.0
    assert config["dynamic_growth_steps"] == 2
    assert "inner_optimizer" in config
    LossScaleOptimizer.from_config(config)


def test_init_dynamic_arg():
    inner_optimizer = tf_lamb.LAMB(learning_rate=0.5)

    # dynamic=True is supported.
    LossScaleOptimizer(inner_optimizer, dynamic=True)

    # dynamic=False is not.
    with pytest.raises(ValueError, match="set `loss_scale_factor`"):
        LossScaleOptimizer(inner_optimizer, dynamic=False)


@KERAS_3_12
def test_init_unsupported_arg():
    inner_optimizer = tf_lamb.LAMB(learning_rate=0.5)
    with pytest.raises(ValueError, match="arguments: `foo`, `bar`"):
        LossScaleOptimizer(inner_optimizer, foo=True, bar=3)


@KERAS_3_12
@pytest.mark.parametrize(
    "arg_name, arg_value",
    [
        ("weight_decay", 0.5),
        ("clipnorm", 0.5),
        ("global_clipnorm", 0.5),
        ("clipvalue", 0.5),
        ("use_ema", True),
        ("ema_momentum", 0.5),
        ("ema_overwrite_frequency", 2),
        ("loss_scale_factor", 0.5),
        ("gradient_accumulation_steps", 2),
    ],
)
def test_init_base_optimizer_unsupported_args(arg_name, arg_value):
    inner_optimizer = tf_lamb.LAMB(learning_rate=0.5)
    with pytest.raises(ValueError, match="on the `inner_optimizer`"):
        LossScaleOptimizer(inner_optimizer, **{arg_name: arg_value})


def test_deserialization_backwards_compatibility():
    # A config holding every base-optimizer argument at the top level (no longer
    # serialized), around a serialized tf_lamb.LAMB that also holds them.
    inner = keras.saving.serialize_keras_object(tf_lamb.LAMB(learning_rate=0.5))
    inner["config"].update(
        {
            "weight_decay": None,
            "clipnorm": None,
            "global_clipnorm": None,
            "clipvalue": None,
            "use_ema": False,
            "ema_momentum": 0.99,
            "ema_overwrite_frequency": None,
            "loss_scale_factor": None,
            "gradient_accumulation_steps": None,
        }
    )
    config = {
        "name": "loss_scale_optimizer",
        "weight_decay": None,
        "clipnorm": None,
        "global_clipnorm": None,
        "clipvalue": None,
        "use_ema": False,
        "ema_momentum": 0.99,
        "ema_overwrite_frequency": None,
        "loss_scale_factor": None,
        "gradient_accumulation_steps": None,
        "inner_optimizer": inner,
        "initial_scale": 2.0,
        "dynamic_growth_steps": 2,
    }
    LossScaleOptimizer.from_config(config)
