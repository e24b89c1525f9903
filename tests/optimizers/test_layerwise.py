"""The shared mechanism: trust ratio, exclusions by path, argument validation."""

import json

import keras
import numpy as np
import pytest

import tf_lamb
from tests.optimizers import harness
from tests.optimizers.reference import LAMBReference
from tf_lamb.optimizers import plan
from tf_lamb.optimizers.layerwise import trust_ratio

OPTIMIZERS = [tf_lamb.LAMB, tf_lamb.LARS, tf_lamb.LANS, tf_lamb.LARC]

# keras_hub's BertBackbone variable paths, as keras_hub names BERT's variables.
BERT_PATHS = {
    "token_embedding/embeddings": (True, True),
    "embeddings_layer_norm/gamma": (False, False),
    "embeddings_layer_norm/beta": (False, False),
    "transformer_layer_0/self_attention_layer/query/kernel": (True, True),
    "transformer_layer_0/self_attention_layer/query/bias": (False, False),
    "transformer_layer_0/self_attention_layer_norm/gamma": (False, False),
    "transformer_layer_0/feedforward_intermediate_dense/kernel": (True, True),
    "transformer_layer_0/feedforward_output_dense/bias": (False, False),
    "transformer_layer_0/feedforward_layer_norm/beta": (False, False),
    "encoder/layer_0/LayerNorm/gamma": (False, False),  # Google BERT naming
}


def scalar(x):
    return float(keras.ops.convert_to_numpy(x))


@pytest.mark.parametrize(
    "w_norm, u_norm, kwargs, expected",
    [
        (2.0, 4.0, {}, 0.5),
        (0.0, 4.0, {}, 1.0),  # zero weights (a fresh bias) -> ratio 1
        (2.0, 0.0, {}, 1.0),  # zero direction -> ratio 1, no division by zero
        (2.0, 4.0, {"coefficient": 0.001}, 0.0005),
        (2.0, 4.0, {"bounds": (3.0, None)}, 0.75),  # phi clips ||w|| up to 3
        (8.0, 4.0, {"bounds": (0.0, 4.0)}, 1.0),  # phi clips ||w|| down to 4
        (8.0, 1.0, {"max_ratio": 3.0}, 3.0),
        (8.0, 1.0, {"max_ratio": 0.5}, 0.5),
        (0.0, 1.0, {"max_ratio": 0.5}, 1.0),  # the zero rule holds under a cap below 1
        (2.0, 0.0, {"max_ratio": 0.5}, 1.0),
        (2.0, 1.0, {"denominator_offset": 3.0}, 0.5),
        (2.0, 0.0, {"denominator_offset": 3.0}, 1.0),  # zero test looks at ||u|| only
    ],
)
def test_trust_ratio_formula_and_zero_rule(w_norm, u_norm, kwargs, expected):
    got = trust_ratio(keras.ops.convert_to_tensor(w_norm), keras.ops.convert_to_tensor(u_norm), **kwargs)
    assert scalar(got) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("optimizer_class", OPTIMIZERS)
def test_bert_exclusions_match_keras_hub_paths_on_this_backend(optimizer_class):
    variables = [harness.make_variable(p, np.ones((2,))) for p in BERT_PATHS]
    optimizer = optimizer_class(
        learning_rate=0.01,
        weight_decay=0.01,
        exclude_from_weight_decay=["LayerNorm", "layer_norm", "bias"],
    )
    optimizer.build(variables)
    settings = {path: (rate > 0, adapts) for path, rate, adapts in optimizer.layer_settings()}
    assert settings == BERT_PATHS, keras.backend.backend()


def test_exclusions_accept_callables_and_variables():
    a = harness.make_variable("net/a/kernel", np.ones(3))
    b = harness.make_variable("net/b/kernel", np.ones(3))
    c = harness.make_variable("net/c/kernel", np.ones((3, 3)))
    optimizer = tf_lamb.LAMB(
        weight_decay=0.1,
        exclude_from_weight_decay=[a, lambda v: len(v.shape) == 2],
        exclude_from_layer_adaptation=[b],
    )
    optimizer.build([a, b, c])
    assert optimizer.layer_settings() == [
        ("net/a/kernel", 0.0, True),
        ("net/b/kernel", 0.1, False),
        ("net/c/kernel", 0.0, True),
    ]


def test_keras_style_exclude_method_matches_paths_too():
    ln = harness.make_variable("LayerNorm/gamma", np.ones(3))
    k = harness.make_variable("dense/kernel", np.ones(3))
    optimizer = tf_lamb.LAMB(weight_decay=0.1)
    optimizer.exclude_from_weight_decay(var_names=["LayerNorm"])
    optimizer.build([ln, k])
    assert [rate for _, rate, _ in optimizer.layer_settings()] == [0.0, 0.1]
    with pytest.raises(ValueError, match="before the optimizer is built"):
        optimizer.exclude_from_weight_decay(var_names=["dense"])


def test_no_double_weight_decay_from_the_keras_base_class():
    # A zero gradient with decay inside the trust ratio: u = wd * w, ratio ||w|| / ||wd w||
    # = 1 / wd, so w moves by exactly lr * w. Keras' decoupled decay on top would add lr*wd*w.
    w = harness.make_variable("w", np.array([1.0, 2.0]))
    optimizer = tf_lamb.LAMB(learning_rate=0.1, weight_decay=0.5)
    assert optimizer.weight_decay is None  # the base class never decays
    optimizer.apply_gradients([(keras.ops.zeros((2,)), w)])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(w), [0.9, 1.8], rtol=1e-6)


@pytest.mark.parametrize(
    "optimizer_class, kwargs, argument",
    [
        (tf_lamb.LAMB, {"learning_rate": -0.1}, "learning_rate"),
        (tf_lamb.LAMB, {"beta_1": 1.0}, "beta_1"),
        (tf_lamb.LAMB, {"beta_2": -0.1}, "beta_2"),
        (tf_lamb.LAMB, {"epsilon": 0.0}, "epsilon"),
        (tf_lamb.LAMB, {"weight_decay": -1e-4}, "weight_decay"),
        (tf_lamb.LAMB, {"weight_decay_mode": "outside"}, "weight_decay_mode"),
        (tf_lamb.LAMB, {"nesterov": True}, "nesterov"),
        (tf_lamb.LAMB, {"weight_norm_bounds": (2.0, 1.0)}, "weight_norm_bounds"),
        (tf_lamb.LAMB, {"weight_norm_bounds": (-1.0, None)}, "weight_norm_bounds"),
        (tf_lamb.LAMB, {"weight_norm_bounds": 3.0}, "weight_norm_bounds"),
        (tf_lamb.LAMB, {"max_trust_ratio": 0.0}, "max_trust_ratio"),
        (tf_lamb.LAMB, {"exclude_from_weight_decay": ["(unclosed"]}, "exclude_from_weight_decay"),
        (tf_lamb.LAMB, {"exclude_from_layer_adaptation": [3]}, "exclude_from_layer_adaptation"),
        (tf_lamb.LAMB, {"weight_decay": 0.1, "weight_decay_rate": 0.2}, "weight_decay_rate"),
        (tf_lamb.LARS, {"momentum": 1.5}, "momentum"),
        (tf_lamb.LARS, {"trust_coefficient": 0.0}, "trust_coefficient"),
        (tf_lamb.LARS, {"epsilon": -1e-9}, "epsilon"),
        (tf_lamb.LARS, {"form": "lamb"}, "form"),
        (tf_lamb.LANS, {"beta_1": 1.2}, "beta_1"),
        (tf_lamb.LANS, {"epsilon": -1.0}, "epsilon"),
        (tf_lamb.LANS, {"weight_decay_mode": None}, "weight_decay_mode"),
        # Infinite values are out of range (a step would make every weight NaN).
        (tf_lamb.LAMB, {"learning_rate": float("inf")}, "learning_rate"),
        (tf_lamb.LAMB, {"weight_decay": float("inf")}, "weight_decay"),
        (tf_lamb.LAMB, {"epsilon": float("inf")}, "epsilon"),
        (tf_lamb.LAMB, {"max_trust_ratio": float("inf")}, "max_trust_ratio"),
        (tf_lamb.LAMB, {"weight_norm_bounds": (float("inf"), None)}, "weight_norm_bounds"),
        (tf_lamb.LARS, {"trust_coefficient": float("inf")}, "trust_coefficient"),
        (tf_lamb.LAMB, {"beta_1": float("nan")}, "beta_1"),
        # Switches take True or False only, and choices are matched by type (1 is not True).
        (tf_lamb.LAMB, {"bias_correction": "no"}, "bias_correction"),
        (tf_lamb.LANS, {"normalize_grad": 0}, "normalize_grad"),
        (tf_lamb.LARS, {"nesterov": None}, "nesterov"),
        (tf_lamb.LAMB, {"jit_compile": "yes"}, "jit_compile"),
        (tf_lamb.LAMB, {"fused": 1}, "fused"),
    ],
)
def test_bad_arguments_raise_at_construction_naming_the_argument(optimizer_class, kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}") as info:
        optimizer_class(**kwargs)
    assert "Received" in str(info.value) or "received" in str(info.value).lower()


def test_numpy_scalars_are_accepted_and_stored_as_python_floats():
    optimizer = tf_lamb.LAMB(
        learning_rate=np.float32(0.5), beta_1=np.float32(0.75), epsilon=np.float64(1e-6),
        weight_decay=np.float32(0.25), max_trust_ratio=np.int64(10),
    )
    config = optimizer.get_config()
    for key, value in [("beta_1", 0.75), ("epsilon", 1e-6), ("weight_decay", 0.25),
                       ("max_trust_ratio", 10.0), ("learning_rate", 0.5)]:
        assert type(config[key]) is float and config[key] == value, key
    json.dumps(config)  # No NumPy scalar left in the config.


def test_model_garden_weight_decay_rate_alias():
    optimizer = tf_lamb.LAMB(weight_decay_rate=0.02)
    assert optimizer.weight_decay_rate == 0.02
    assert optimizer.get_config()["weight_decay"] == 0.02


def test_integer_learning_rate_is_accepted():
    assert tf_lamb.LARS(learning_rate=17).get_config()["learning_rate"] == 17.0


@pytest.mark.parametrize("method", plan.NORM_METHODS)
@pytest.mark.parametrize("shape", [(), (7,), (512, 256), (4, 3, 128, 64), (30001, 5)])
def test_every_norm_method_equals_the_float64_norm(method, shape):
    # (512, 256) and (4, 3, 128, 64) are large enough for "fold" to fold into eighths;
    # (30001, 5) leaves a tail of 5 elements past them. Tolerance: float32 summation of up
    # to 1.5e5 squares.
    if method == "l2_loss" and keras.backend.backend() != "tensorflow":
        pytest.skip("tf.nn.l2_loss is TensorFlow's")
    x = np.random.default_rng(5).normal(size=shape)
    got = keras.ops.convert_to_numpy(
        plan.l2_norm(keras.ops.convert_to_tensor(x, "float32"), method)
    )
    np.testing.assert_allclose(got, np.linalg.norm(x), rtol=2e-6)


def test_lamb_on_a_layer_large_enough_to_fold_equals_the_reference():
    weights = [np.random.default_rng(6).normal(size=(512, 256))]
    reference = LAMBReference(weights, 0.01, wd=0.01)
    harness.run_and_compare(
        tf_lamb.LAMB(learning_rate=0.01, weight_decay=0.01), reference, weights,
        ["encoder/dense/kernel"], steps=3, shapes={"kernel": (512, 256)},
    )


@pytest.mark.parametrize("dtype", ["int32", "complex64"])
def test_a_variable_that_is_not_real_floating_point_is_refused_by_name(dtype):
    optimizer = tf_lamb.LAMB()
    variable = keras.Variable(np.ones(3), dtype=dtype, name="counts", trainable=False)
    with pytest.raises(ValueError, match=f"`counts` of dtype {dtype}"):
        optimizer.build([variable])
