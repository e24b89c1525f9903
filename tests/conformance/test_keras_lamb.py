"""Keras 3's ``Lamb`` tests, run against ``tf_lamb.LAMB``.

Peer file: keras-team/keras, ``keras/src/optimizers/lamb_test.py``, read at commit
3422977a5e38fb2f7709aaa9a08e47f0c43d0f60 (identical at tag v3.15.1, the installed Keras).

Mapping: ``keras.optimizers.Lamb(...)`` becomes ``tf_lamb.LAMB(..., epsilon=1e-7,
weight_decay_mode="decoupled")``, which reproduces Keras' update (epsilon 1e-7, weight decay
applied to the weights before the trust ratio); where the Keras test uses
``exclude_from_weight_decay``, ``exclude_from_layer_adaptation=[]`` is added, since tf_lamb's
adaptation list otherwise falls back on the weight-decay list (tfa's rule) while Keras' ``Lamb``
adapts every layer. Every golden value and tolerance is Keras'. Keras'
``run_class_serialization_test`` is re-implemented here (the same two round trips and checks).
The numeric tests also run on tf_lamb's other execution paths: Keras' per-variable loop
(``fused=False``) and, on TensorFlow, the plain-graph fused step (``jit_compile=False``).
"""

import json

import keras
import numpy as np
import pytest
from keras import ops

import tf_lamb

BACKEND = keras.backend.backend()

# tf_lamb's execution paths: the default (the fused step, XLA-compiled on TensorFlow), the
# plain-graph fused step on TensorFlow's kernels, and Keras' per-variable loop.
PATHS = [pytest.param({}, id="fused")]
if BACKEND == "tensorflow":
    PATHS.append(pytest.param({"jit_compile": False}, id="graph"))
PATHS.append(pytest.param({"fused": False}, id="per_variable"))


def keras_lamb(**kwargs):
    """``keras.optimizers.Lamb(**kwargs)`` as tf_lamb spells it."""
    return tf_lamb.LAMB(**{"epsilon": 1e-7, "weight_decay_mode": "decoupled", **kwargs})


def _tagged(obj):
    """JSON-ready copy of a config in which tuples stay distinguishable from lists."""
    if isinstance(obj, tuple):
        return {"__tuple__": [_tagged(x) for x in obj]}
    if isinstance(obj, list):
        return [_tagged(x) for x in obj]
    if isinstance(obj, dict):
        return {k: _tagged(v) for k, v in obj.items()}
    return obj


def _untagged(obj):
    if isinstance(obj, dict):
        if set(obj) == {"__tuple__"}:
            return tuple(_untagged(x) for x in obj["__tuple__"])
        return {k: _untagged(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_untagged(x) for x in obj]
    return obj


def _to_json(obj):
    return json.dumps(_tagged(obj), sort_keys=True)


def check_class_serialization(instance):
    """Keras' ``run_class_serialization_test``: a ``get_config``/``from_config`` round trip
    and a ``serialize_keras_object``/JSON/``deserialize_keras_object`` round trip, each giving
    the same config and an object with the same attributes."""
    cls = type(instance)
    config = instance.get_config()
    config_json = _to_json(config)
    reference_dir = set(dir(instance))

    revived = cls.from_config(config)
    assert _to_json(revived.get_config()) == config_json
    assert reference_dir == set(dir(revived))

    serialized_json = _to_json(keras.saving.serialize_keras_object(instance))
    revived = keras.saving.deserialize_keras_object(_untagged(json.loads(serialized_json)))
    assert _to_json(revived.get_config()) == config_json
    new_dir = set(dir(revived))
    reference_dir.discard("__annotations__")
    new_dir.discard("__annotations__")
    assert reference_dir == new_dir
    return revived


def test_config():
    optimizer = keras_lamb(learning_rate=0.5, beta_1=0.5, beta_2=0.67, epsilon=1e-5)
    check_class_serialization(optimizer)


@pytest.mark.parametrize("path", PATHS)
def test_single_step(path):
    optimizer = keras_lamb(learning_rate=0.5, **path)
    grads = ops.array([1.0, 6.0, 7.0, 2.0])
    variable = keras.Variable([1.0, 2.0, 3.0, 4.0])
    optimizer.apply_gradients(zip([grads], [variable]))
    np.testing.assert_allclose(
        variable.numpy(), [-0.3693, 0.6306, 1.6306, 2.6306], rtol=1e-4, atol=1e-4
    )


def _assert_almost_equal(first, second, places):
    """unittest's ``assertAlmostEqual(first, second, places=places)``."""
    assert round(abs(float(first) - float(second)), places) == 0, (first, second)


@pytest.mark.parametrize("path", PATHS)
def test_weight_decay(path):
    grads, var1, var2, var3 = (
        ops.zeros(()),
        keras.Variable(2.0),
        keras.Variable(2.0, name="exclude"),
        keras.Variable(2.0),
    )
    settings = dict(learning_rate=1.0, weight_decay=0.004, exclude_from_layer_adaptation=[], **path)
    optimizer_1 = keras_lamb(**settings)
    optimizer_1.apply_gradients(zip([grads], [var1]))

    optimizer_2 = keras_lamb(**settings)
    optimizer_2.exclude_from_weight_decay(var_names=["exclude"])
    optimizer_2.apply_gradients(zip([grads, grads], [var1, var2]))

    optimizer_3 = keras_lamb(**settings)
    optimizer_3.exclude_from_weight_decay(var_list=[var3])
    optimizer_3.apply_gradients(zip([grads, grads], [var1, var3]))

    _assert_almost_equal(var1.numpy(), 1.9760959, places=6)
    _assert_almost_equal(var2.numpy(), 2.0, places=6)
    _assert_almost_equal(var3.numpy(), 2.0, places=6)


@pytest.mark.parametrize("path", PATHS)
def test_correctness_with_golden(path):
    optimizer = keras_lamb(**path)

    x = keras.Variable(np.ones([10], dtype="float32"))
    grads = ops.arange(0.1, 1.1, 0.1)
    first_grads = ops.full((10,), 0.01)

    golden = np.tile([[0.999], [0.9982], [0.9974], [0.9965], [0.9955]], (1, 10))

    optimizer.apply_gradients(zip([first_grads], [x]))
    for i in range(5):
        np.testing.assert_allclose(x.numpy(), golden[i], rtol=5e-4, atol=5e-4)
        optimizer.apply_gradients(zip([grads], [x]))


def test_clip_norm():
    optimizer = keras_lamb(clipnorm=1)
    grad = [np.array([100.0, 100.0])]
    clipped_grad = optimizer._clip_gradients(grad)
    np.testing.assert_allclose(
        ops.convert_to_numpy(clipped_grad[0]), [2**0.5 / 2, 2**0.5 / 2], rtol=1e-6, atol=1e-6
    )


def test_clip_value():
    optimizer = keras_lamb(clipvalue=1)
    grad = [np.array([100.0, 100.0])]
    clipped_grad = optimizer._clip_gradients(grad)
    np.testing.assert_allclose(
        ops.convert_to_numpy(clipped_grad[0]), [1.0, 1.0], rtol=1e-6, atol=1e-6
    )
