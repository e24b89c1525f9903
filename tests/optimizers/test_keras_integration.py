"""What Keras users combine the optimizers with: saving, accumulation, clipping, loss scaling,
mixed precision, sparse gradients and tf.distribute."""

import inspect
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import tf_lamb
from tests.optimizers import harness
from tests.optimizers.reference import LAMBReference

TF_ONLY = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="TensorFlow-specific behaviour"
)

# Constructor arguments set away from their defaults.
FULL_CONFIGS = [
    (tf_lamb.LAMB, dict(
        learning_rate=0.003,
        beta_1=0.8,
        beta_2=0.99,
        epsilon=1e-7,
        weight_decay=0.02,
        exclude_from_weight_decay=["LayerNorm", "layer_norm", "bias"],
        exclude_from_layer_adaptation=["embeddings"],
        weight_decay_mode="decoupled",
        bias_correction=False,
        nesterov="nn-lamb",
        weight_norm_bounds=(0.01, 10.0),
        max_trust_ratio=5.0,
        global_clipnorm=1.0,
        gradient_accumulation_steps=4,
        name="lamb_full",
    )),
    (tf_lamb.LARS, dict(
        learning_rate=keras.optimizers.schedules.PolynomialDecay(17.0, 100, power=2.0),
        momentum=0.8,
        weight_decay=2e-4,
        trust_coefficient=0.002,
        epsilon=1e-9,
        nesterov=True,
        form="paper",
        exclude_from_weight_decay=["batch_norm", "bias"],
        exclude_from_layer_adaptation=[],
        name="lars_full",
    )),
    (tf_lamb.LANS, dict(
        learning_rate=0.002,
        beta_1=0.85,
        weight_decay=0.05,
        normalize_grad=False,
        weight_decay_mode="l2",
        exclude_from_weight_decay="bias",
        use_ema=True,
        name="lans_full",
    )),
    (tf_lamb.LARC, dict(
        learning_rate=0.02,
        momentum=0.8,
        weight_decay=0.001,
        trust_coefficient=0.01,
        clip=False,
        epsilon=1e-6,
        nesterov=True,
        exclude_from_weight_decay=["bias"],
        exclude_from_layer_adaptation=["layer_norm"],
        weight_norm_bounds=(0.1, 5.0),
        max_trust_ratio=3.0,
        step_plan={"ordered": False},
        name="larc_full",
    )),
]


@pytest.mark.parametrize("optimizer_class, kwargs", FULL_CONFIGS, ids=lambda x: getattr(x, "__name__", ""))
def test_get_config_round_trips_every_argument(optimizer_class, kwargs):
    optimizer = optimizer_class(**kwargs)
    config = optimizer.get_config()
    # Every argument of the constructor is in the config, with the value it was given (a
    # schedule as its serialized form): a dropped argument would otherwise rebuild silently
    # with its default.
    arguments = set(inspect.signature(optimizer_class.__init__).parameters) - {"self", "kwargs"}
    assert arguments <= set(config), arguments - set(config)
    for key, value in kwargs.items():
        if key == "learning_rate" and not isinstance(value, float):
            assert config[key]["config"] == value.get_config()
        else:
            expected = list(value) if isinstance(value, tuple) else value
            if key.startswith("exclude_from") and isinstance(value, str):
                expected = [value]
            if isinstance(value, float):  # The learning rate is held in float32.
                expected = pytest.approx(value, rel=1e-7)
            assert config[key] == expected, key
    rebuilt = optimizer_class.from_config(json.loads(json.dumps(config)))
    assert rebuilt.get_config() == config
    again = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(again) is type(optimizer) and again.get_config() == config


def test_exclusion_variables_serialize_as_anchored_path_regexes():
    v = harness.make_variable("encoder/LayerNorm/gamma", np.ones(2))
    config = tf_lamb.LAMB(exclude_from_weight_decay=[v, "bias"]).get_config()
    assert config["exclude_from_weight_decay"] == ["bias", "^encoder/LayerNorm/gamma$"]
    assert tf_lamb.LAMB().get_config()["exclude_from_layer_adaptation"] is None
    assert tf_lamb.LAMB(exclude_from_layer_adaptation=[]).get_config()["exclude_from_layer_adaptation"] == []


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,))
    x = keras.layers.Dense(16, activation="tanh", name="dense")(inputs)
    x = keras.layers.LayerNormalization(name="LayerNorm")(x)
    outputs = keras.layers.Dense(3, name="head")(x)
    return keras.Model(inputs, outputs)


def _data(n=96):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = (x[:, :3] * 2.0 - x[:, 3:]).astype("float32")
    return x, y


@pytest.mark.parametrize("optimizer_class", [tf_lamb.LAMB, tf_lamb.LARS, tf_lamb.LANS, tf_lamb.LARC])
def test_keras_file_saved_mid_training_resumes_identically(tmp_path, optimizer_class):
    x, y = _data()

    def make_optimizer():
        return optimizer_class(
            learning_rate=keras.optimizers.schedules.PolynomialDecay(0.02, 40, 0.001),
            weight_decay=0.01,
            exclude_from_weight_decay=["LayerNorm", "bias"],
        )

    straight = _model()
    straight.compile(make_optimizer(), "mse")
    straight.fit(x, y, batch_size=16, epochs=4, shuffle=False, verbose=0)

    first = _model()
    first.compile(make_optimizer(), "mse")
    first.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    path = str(tmp_path / "mid.keras")
    first.save(path)
    resumed = keras.saving.load_model(path)
    assert type(resumed.optimizer) is optimizer_class
    assert int(keras.ops.convert_to_numpy(resumed.optimizer.iterations)) == 12
    resumed.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("optimizer_class", [tf_lamb.LAMB, tf_lamb.LARS, tf_lamb.LANS, tf_lamb.LARC])
def test_gradient_accumulation_equals_one_step_on_the_concatenated_batch(
        optimizer_path, optimizer_class):
    # With mean losses over equal micro-batches, the gradient of the concatenated batch is the
    # mean of the micro-batch gradients; 4 accumulated micro-steps must equal 1 full step, on
    # every path: the step number t (bias correction) counts optimizer steps, not micro-steps,
    # in the fused step and in Keras' per-variable loop alike.
    weights = harness.initial_weights(seed=8)
    accumulated = [harness.make_variable(f"acc/{k}", w) for k, w in weights.items()]
    single = [harness.make_variable(f"one/{k}", w) for k, w in weights.items()]
    opt_acc = optimizer_class(learning_rate=0.05, weight_decay=0.01, gradient_accumulation_steps=4)
    opt_one = optimizer_class(learning_rate=0.05, weight_decay=0.01)
    for big_step in range(3):
        micro = harness.random_gradients(4, seed=100 + big_step)
        for k, grads in enumerate(micro):
            before = keras.ops.convert_to_numpy(accumulated[2]).copy()
            opt_acc.apply_gradients(zip([keras.ops.convert_to_tensor(g, "float32") for g in grads], accumulated))
            if k < 3:  # nothing moves before the last micro-batch
                np.testing.assert_array_equal(keras.ops.convert_to_numpy(accumulated[2]), before)
        mean = [np.mean([m[i] for m in micro], axis=0) for i in range(len(weights))]
        opt_one.apply_gradients(zip([keras.ops.convert_to_tensor(g, "float32") for g in mean], single))
        for a, b in zip(accumulated, single):
            # Tolerance: the two paths sum the micro-gradients in different orders (float32).
            np.testing.assert_allclose(
                keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), rtol=1e-5, atol=1e-6
            )


def test_global_clipnorm_is_nvlamb_pre_normalization():
    # g <- g / max(1, ||G|| / 1.0) with ||G|| over all gradients, before the moments.
    weights = list(harness.initial_weights(seed=9).values())
    paths = [f"layer_{i}/w" for i in range(len(weights))]
    optimizer = tf_lamb.LAMB(learning_rate=0.01, weight_decay=0.01, global_clipnorm=1.0)
    reference = LAMBReference(weights, 0.01, wd=0.01)
    variables = [harness.make_variable(p, w) for p, w in zip(paths, weights)]
    for grads in harness.random_gradients(10, seed=11, scale=5.0):
        global_norm = np.sqrt(sum(np.sum(g**2) for g in grads))
        reference.step([g / max(1.0, global_norm) for g in grads])
        optimizer.apply_gradients(zip([keras.ops.convert_to_tensor(g, "float32") for g in grads], variables))
    for v, ref in zip(variables, reference.w):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(v), ref, rtol=harness.RTOL, atol=harness.ATOL)


@pytest.mark.parametrize("optimizer_class, kwargs", [
    (tf_lamb.LAMB, {}),
    (tf_lamb.LARS, {}),
    # LANS' own per-layer normalization would hide the scale of any clip.
    (tf_lamb.LANS, {"normalize_grad": False}),
], ids=["LAMB", "LARS", "LANS"])
def test_global_clipnorm_leaves_a_gradient_under_the_limit_as_it_is(
        optimizer_path, optimizer_class, kwargs):
    # g <- g / max(1, ||G|| / c): steps under the limit pass unchanged, steps over it are scaled
    # down to norm c. Against the same optimizer without the clip, fed the expected gradient;
    # the norms change from step to step, so a wrong scale shows through the moments (and
    # LARS' trust ratio weighs the gradient against the weight decay at each step).
    weights = harness.initial_weights(seed=10)
    clipped = [harness.make_variable(f"clip/{k}", w) for k, w in weights.items()]
    plain = [harness.make_variable(f"plain/{k}", w) for k, w in weights.items()]
    opt_clip = optimizer_class(learning_rate=0.01, weight_decay=0.01, global_clipnorm=1.0,
                               **kwargs)
    opt_plain = optimizer_class(learning_rate=0.01, weight_decay=0.01, **kwargs)
    factors = [0.02, 0.05, 0.5, 0.08, 2.0, 0.03]  # global norms about 10x these
    norms = []
    for factor, grads in zip(factors, harness.random_gradients(len(factors), seed=14)):
        grads = [factor * g for g in grads]
        norm = np.sqrt(sum(np.sum(g**2) for g in grads))
        norms.append(norm)
        expected = [g / max(1.0, norm / 1.0) for g in grads]
        for optimizer, given, variables in ((opt_clip, grads, clipped), (opt_plain, expected, plain)):
            tensors = [keras.ops.convert_to_tensor(g, "float32") for g in given]
            optimizer.apply_gradients(zip(tensors, variables))
        for a, b in zip(clipped, plain):
            np.testing.assert_allclose(
                keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), rtol=1e-5, atol=1e-6,
                err_msg=f"global norm {norm:.3g}, limit 1.0",
            )
    assert sum(n < 1.0 for n in norms) == 4 and sum(n > 1.0 for n in norms) == 2


def _apply(optimizer, grads, variables):
    """`optimizer.apply`; on JAX through `stateless_apply`, the path Keras' `fit` uses there
    (Keras' LossScaleOptimizer cannot apply statefully on eager JAX, with any optimizer)."""
    grads = [keras.ops.convert_to_tensor(g, "float32") for g in grads]
    if keras.backend.backend() != "jax":
        optimizer.apply(grads, variables)
        return
    optimizer.build(variables)
    new_vars, new_slots = optimizer.stateless_apply(
        [v.value for v in optimizer.variables], grads, [v.value for v in variables]
    )
    for v, n in zip(list(variables) + optimizer.variables, list(new_vars) + list(new_slots)):
        v.assign(n)


@pytest.mark.parametrize("optimizer_class", [tf_lamb.LAMB, tf_lamb.LARS, tf_lamb.LANS, tf_lamb.LARC])
def test_loss_scale_overflow_skips_the_step_bit_identically(optimizer_class):
    weights = harness.initial_weights(seed=12)
    variables = [harness.make_variable(f"m/{k}", w) for k, w in weights.items()]
    inner = optimizer_class(learning_rate=0.01, weight_decay=0.01)
    optimizer = keras.optimizers.LossScaleOptimizer(inner, initial_scale=1024.0)
    grads = harness.random_gradients(2, seed=13)
    _apply(optimizer, grads[0], variables)
    before_vars = [keras.ops.convert_to_numpy(v).copy() for v in variables]
    before_slots = [keras.ops.convert_to_numpy(v).copy() for v in inner.variables]
    assert int(keras.ops.convert_to_numpy(inner.iterations)) == 1
    bad = [g.copy() for g in grads[1]]
    bad[2][0, 0] = np.inf
    _apply(optimizer, bad, variables)
    for v, b in zip(variables, before_vars):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(v), b)
    for v, b in zip(inner.variables, before_slots):  # slots and the step counter
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(v), b)
    assert float(keras.ops.convert_to_numpy(optimizer.dynamic_scale)) == 512.0
    _apply(optimizer, grads[1], variables)  # a finite step moves again
    assert not np.array_equal(keras.ops.convert_to_numpy(variables[2]), before_vars[2])


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_keeps_float32_slots_and_trains(policy):
    x, y = _data()
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = _model()
        optimizer = tf_lamb.LAMB(learning_rate=0.01, weight_decay=0.01)
        model.compile(optimizer, "mse")
        history = model.fit(x, y, batch_size=32, epochs=3, verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    inner = getattr(model.optimizer, "inner_optimizer", model.optimizer)
    assert {v.dtype for v in inner.variables if "iteration" not in v.path} == {"float32"}
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]


@TF_ONLY
@pytest.mark.parametrize("components", ["tensors", "tuples"])
@pytest.mark.parametrize("optimizer_class", [tf_lamb.LAMB, tf_lamb.LARS, tf_lamb.LANS, tf_lamb.LARC])
def test_indexed_slices_gradients_equal_their_dense_form(optimizer_class, components):
    # "tuples": indices and dense_shape as Python tuples, as Keras' own sparse tests build
    # them; the XLA-compiled step takes its gradients as tf.function arguments.
    import tensorflow as tf

    table = np.random.default_rng(14).normal(size=(10, 4))
    sparse_var = harness.make_variable("sparse/embeddings", table)
    dense_var = harness.make_variable("dense/embeddings", table)
    opt_sparse = optimizer_class(learning_rate=0.01, weight_decay=0.01)
    opt_dense = optimizer_class(learning_rate=0.01, weight_decay=0.01)
    rng = np.random.default_rng(15)
    for _ in range(3):
        rows = rng.normal(size=(3, 4)).astype("float32")
        indices, shape = (1, 4, 1), (10, 4)  # a repeated row is summed
        if components == "tensors":
            indices, shape = tf.constant(indices), tf.constant(shape)
        sparse = tf.IndexedSlices(tf.constant(rows), indices, dense_shape=shape)
        opt_sparse.apply_gradients([(sparse, sparse_var)])
        opt_dense.apply_gradients([(tf.convert_to_tensor(sparse), dense_var)])
    np.testing.assert_allclose(sparse_var.numpy(), dense_var.numpy(), rtol=1e-6, atol=1e-7)


MIRRORED_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, tf_lamb

def run(strategy, name):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype("float32"); y = (x[:, :3] * 2 - x[:, 3:]).astype("float32")
    with strategy.scope():
        keras.utils.set_random_seed(1)
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="tanh"),
                                  keras.layers.LayerNormalization(), keras.layers.Dense(3)])
        if name.endswith("AdamW"):  # Keras' own, and with the clip after the sum.
            base = keras.optimizers.AdamW
            cls = type("AdamW", (tf_lamb.optimizers.ClipAfterSum, base), {}) if name == "AdamW" else base
            opt = cls(learning_rate=0.05, weight_decay=0.01, global_clipnorm=0.1)
        else:
            # LAMB-graph: the fused step without XLA; LAMB-generic: Keras' per-variable loop
            # (both on TensorFlow's fused kernels, per device).
            base, _, path = name.partition("-")
            extra = {"graph": {"jit_compile": False}, "generic": {"fused": False}}.get(path, {})
            opt = getattr(tf_lamb, base)(learning_rate=0.05, weight_decay=0.01,
                                         exclude_from_weight_decay=["bias"], global_clipnorm=0.1,
                                         **extra)
        opt.build(model.trainable_variables)  # slots are created outside the tf.function
        loss_fn = keras.losses.MeanSquaredError(reduction="sum")
    ds = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices((x, y)).batch(32))

    @tf.function
    def step(xb, yb):
        def replica(xb, yb):
            with tf.GradientTape() as tape:
                loss = loss_fn(yb, model(xb, training=True)) / 32.0  # global batch 32
            grads = tape.gradient(loss, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables))
        strategy.run(replica, args=(xb, yb))

    for _ in range(3):
        for xb, yb in ds:
            step(xb, yb)
    return [w.tolist() for w in model.get_weights()], strategy.num_replicas_in_sync

out = {}
for name in ["LAMB", "LAMB-graph", "LAMB-generic", "LARS", "LANS", "AdamW", "keras.AdamW"]:
    mirrored, n = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), name)
    single, _ = run(tf.distribute.get_strategy(), name)
    out[name] = {"replicas": n, "max_abs_diff": max(float(np.max(np.abs(np.array(a) - np.array(b))))
                                                     for a, b in zip(mirrored, single))}
print("RESULT" + json.dumps(out))
"""


@TF_ONLY
@pytest.mark.slow
def test_mirrored_strategy_on_two_cpus_equals_one_device_at_the_same_global_batch():
    # Runs in a fresh process: logical CPU devices must be configured before TF starts.
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT")[-1])
    # Keras' AdamW clips each replica's half of the gradient (the clip at 0.1 is active), so
    # its steps differ from one device's; with ClipAfterSum it clips their sum.
    assert result.pop("keras.AdamW")["max_abs_diff"] > 1e-3
    for name, r in result.items():
        assert r["replicas"] == 2, name
        # Gradients are summed across replicas in a different order than on one device;
        # float32 rounding over 6 steps stays far below 1e-5.
        assert r["max_abs_diff"] < 1e-5, (name, r)


@pytest.mark.parametrize("optimizer_class", [tf_lamb.LAMB, "AdamW"])
def test_on_a_keras_without_the_hooks_global_clipnorm_raises_at_construction(
    monkeypatch, optimizer_class
):
    # Keras would clip before the cross-replica sum and the accumulation: a different
    # meaning, so tf_lamb refuses rather than change it silently.
    from tf_lamb.optimizers import seams

    monkeypatch.setattr(seams, "clip_supported", lambda: False)
    monkeypatch.setattr(
        seams, "describe_missing", lambda clip_only: "Keras X changed _clip_gradients."
    )
    if optimizer_class == "AdamW":
        optimizer_class = type(
            "AdamW", (tf_lamb.optimizers.ClipAfterSum, keras.optimizers.AdamW), {}
        )
    with pytest.raises(ValueError, match="global_clipnorm.*_clip_gradients"):
        optimizer_class(learning_rate=0.1, global_clipnorm=0.5)
    optimizer_class(learning_rate=0.1)  # Without the clip it runs Keras' per-variable loop.


@pytest.mark.parametrize("form", ["string", "dict"])
@pytest.mark.parametrize(
    "name, optimizer_class",
    [("LAMB", tf_lamb.LAMB), ("LARS", tf_lamb.LARS), ("LANS", tf_lamb.LANS), ("LARC", tf_lamb.LARC)],
)
def test_the_registered_name_works_in_compile(name, optimizer_class, form):
    # compile(optimizer="tf_lamb>LAMB") or {"class_name": "tf_lamb>LAMB", "config": {...}}, as
    # docs/guide.md documents.
    identifier = f"tf_lamb>{name}"
    if form == "dict":
        identifier = {"class_name": identifier, "config": {"learning_rate": 0.01}}
    elif not harness.STRINGS_RESOLVE_REGISTERED_NAMES:
        with pytest.raises(ValueError, match="Could not interpret optimizer identifier"):
            keras.optimizers.get(identifier)
        return
    x, y = _data()
    model = _model()
    model.compile(optimizer=identifier, loss="mse")
    assert type(model.optimizer) is optimizer_class
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) > 0
