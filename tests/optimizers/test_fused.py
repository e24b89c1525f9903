"""The fused step: one call for all layers, compiled once, with per-layer statistics."""

import keras
import numpy as np
import pytest

import tf_lamb
from tests.optimizers import harness
from tests.optimizers.reference import LAMBReference, LANSReference, ratio
from tf_lamb.optimizers import fused, ordering, seams, tf_graph

BACKEND = keras.backend.backend()
PATHS = ["encoder/scale", "encoder/bias", "encoder/dense/kernel", "encoder/conv/kernel", "encoder/LayerNorm/beta"]
WEIGHTS = list(harness.initial_weights(seed=21).values())


def _tensors(arrays):
    return [keras.ops.convert_to_tensor(np.asarray(a, "float32")) for a in arrays]


def test_this_keras_has_every_hook_the_fused_step_overrides():
    # The capability check, not a version window: it must hold on every Keras CI runs
    # (the lowest supported, the pinned one and keras-nightly).
    assert seams.missing_hooks() == []
    assert seams.fused_supported()
    optimizer = tf_lamb.LAMB(gradient_accumulation_steps=2)
    optimizer.build([harness.make_variable("w", np.ones(2))])
    assert optimizer._iterations is not None and optimizer.gradient_accumulation_steps == 2


def test_a_missing_or_changed_hook_is_reported_by_name():
    class Changed(keras.optimizers.Optimizer):
        def _clip_gradients(self, grads, norm):  # One more parameter.
            return grads

    Changed._get_variable_index = None  # Gone.
    problems = seams.missing_hooks(Changed)
    assert "_clip_gradients(self, grads, norm) instead of (self, grads)" in problems
    assert "_get_variable_index is missing" in problems
    assert len(problems) == 2
    # ClipAfterSum needs only its own hooks: a missing slot lookup leaves the clip alone.
    assert seams.missing_hooks(Changed, clip_only=True) == [
        "_clip_gradients(self, grads, norm) instead of (self, grads)"
    ]


def test_fused_true_on_a_keras_without_the_hooks_raises_naming_the_argument(monkeypatch):
    monkeypatch.setattr(seams, "fused_supported", lambda: False)
    with pytest.raises(ValueError, match="fused=True"):
        tf_lamb.LAMB(fused=True)
    assert tf_lamb.LAMB()._fused_active is False  # fused=None falls back quietly


@pytest.mark.parametrize(
    "optimizer_class, reference_class",
    [(tf_lamb.LAMB, LAMBReference), (tf_lamb.LANS, LANSReference)],
    ids=["LAMB", "LANS"],
)
def test_layer_statistics_equal_the_reference_norms_and_ratios(
    optimizer_path, optimizer_class, reference_class
):
    # ||w|| before the step, ||u_k|| and ratio_k of each direction, every step; the bias
    # is excluded (recorded as 0, 0, 1). Tolerance: float32 rounding of a norm.
    optimizer = optimizer_class(
        learning_rate=0.01, weight_decay=0.01, exclude_from_weight_decay=["bias"]
    )
    adapts = ["bias" not in p for p in PATHS]
    reference = reference_class(WEIGHTS, 0.01, wd=0.01, decays=adapts, adapts=adapts)
    variables = [harness.make_variable(p, w) for p, w in zip(PATHS, WEIGHTS)]
    for grads in harness.random_gradients(6, seed=22):
        optimizer.apply_gradients(zip(_tensors(grads), variables))
        reference.step(grads)
        stats = optimizer.layer_statistics()
        assert list(stats["path"]) == PATHS and list(stats["adapts"]) == adapts
        for i, (weight_norm, norms, ratios) in enumerate(reference.statistics):
            if not adapts[i]:
                weight_norm, norms, ratios = 0.0, [0.0] * len(norms), [1.0] * len(ratios)
            np.testing.assert_allclose(stats["weight_norm"][i], weight_norm, rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(stats["update_norm"][i], norms, rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(stats["trust_ratio"][i], ratios, rtol=1e-5, atol=1e-7)


def test_classic_lars_records_the_gradient_norm_and_its_ratio(optimizer_path):
    optimizer = tf_lamb.LARS(learning_rate=1.0, weight_decay=1e-3, trust_coefficient=0.01)
    variables = [harness.make_variable(p, w) for p, w in zip(PATHS, WEIGHTS)]
    grads = harness.random_gradients(1, seed=23)[0]
    before = [np.array(w, np.float64) for w in WEIGHTS]
    optimizer.apply_gradients(zip(_tensors(grads), variables))
    stats = optimizer.layer_statistics()
    for i, (w, g) in enumerate(zip(before, grads)):
        w_norm, g_norm = np.linalg.norm(w), np.linalg.norm(g)
        expected = ratio(w_norm, g_norm, 0.01, offset=1e-3 * w_norm)
        np.testing.assert_allclose(stats["weight_norm"][i], w_norm, rtol=1e-5)
        np.testing.assert_allclose(stats["update_norm"][i, 0], g_norm, rtol=1e-5)
        np.testing.assert_allclose(stats["trust_ratio"][i, 0], expected, rtol=1e-5)


def test_statistics_need_a_built_optimizer():
    with pytest.raises(ValueError, match="not built"):
        tf_lamb.LAMB().layer_statistics()


def _flipping_gradients(step):
    """Random gradients, except that a layer's gradient is zero on odd steps: its trust
    ratio flips between the formula and the zero-norm rule."""
    grads = harness.random_gradients(1, seed=30 + step)[0]
    if step % 2:
        grads[2] = np.zeros_like(grads[2])
    return grads


@pytest.mark.skipif(BACKEND == "torch", reason="PyTorch runs the step eagerly: nothing is traced")
@pytest.mark.parametrize("optimizer_class", [tf_lamb.LAMB, tf_lamb.LARS, tf_lamb.LANS, tf_lamb.LARC])
def test_the_step_is_traced_once_while_the_learning_rate_and_ratio_branches_change(
    optimizer_class,
):
    # A schedule changes the learning rate every step and a layer's trust ratio switches
    # between its two branches; neither may retrace (pytorch/xla#2511 recompiled LAMB every
    # step). TensorFlow counts the traces of its tf.function, JAX the entries of its cache.
    schedule = keras.optimizers.schedules.PolynomialDecay(0.01, 10, end_learning_rate=0.001)
    optimizer = optimizer_class(learning_rate=schedule, weight_decay=0.01)
    variables = [harness.make_variable(p, w) for p, w in zip(PATHS, WEIGHTS)]
    optimizer.build(variables)
    if BACKEND == "tensorflow":
        for step in range(6):
            optimizer.apply(_tensors(_flipping_gradients(step)), variables)
    else:
        import jax

        @jax.jit
        def apply(optimizer_values, trainable_values, grads):
            return optimizer.stateless_apply(optimizer_values, grads, trainable_values)

        opt_values = [v.value for v in optimizer.variables]
        train_values = [v.value for v in variables]
        for step in range(6):
            train_values, opt_values = apply(opt_values, train_values, _tensors(_flipping_gradients(step)))
        assert apply._cache_size() == 1
    if BACKEND == "tensorflow":
        assert optimizer._compiled_step.function.experimental_get_tracing_count() == 1


@pytest.mark.skipif(BACKEND != "torch", reason="torch.compile (dynamo)")
@pytest.mark.parametrize("restored", [False, True], ids=["new", "from_config"])
def test_torch_compile_compiles_the_step_once(restored):
    # model.compile(jit_compile=True) puts the train step under torch.compile; nothing the
    # fused step changes on the optimizer may invalidate dynamo's guards, or it compiles again
    # every step. A config saved on TensorFlow or JAX carries jit_compile=True.
    from torch._dynamo.utils import counters

    optimizer = tf_lamb.LAMB(learning_rate=0.01, weight_decay=0.01, jit_compile=True)
    if restored:
        optimizer = tf_lamb.LAMB.from_config(optimizer.get_config())
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    model.compile(optimizer=optimizer, loss="mse", jit_compile=True)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 3)).astype("float32"), rng.normal(size=(8, 1)).astype("float32")
    before = counters["stats"]["unique_graphs"]  # The counter is the session's.
    model.train_on_batch(x, y)  # Warm-up: the first compilation.
    compiled = counters["stats"]["unique_graphs"]
    assert compiled > before, "torch.compile did not compile this model's step"
    for _ in range(20):
        model.train_on_batch(x, y)
    assert counters["stats"]["unique_graphs"] == compiled
    assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == 21


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's jit_compile switch")
def test_fused_step_without_xla_equals_the_reference(monkeypatch):
    calls = []
    fused_update = fused.FusedStep._fused_update

    def counted(self, *args):
        calls.append(args[-1])  # Whether this call is compiled.
        return fused_update(self, *args)

    monkeypatch.setattr(fused.FusedStep, "_fused_update", counted)
    optimizer = tf_lamb.LAMB(learning_rate=0.01, weight_decay=0.01, jit_compile=False)
    reference = LAMBReference(WEIGHTS, 0.01, wd=0.01)
    harness.run_and_compare(optimizer, reference, WEIGHTS, PATHS)
    assert optimizer._compiled_step is None and calls == [False] * 25


def test_after_returns_its_input_bit_for_bit_whatever_the_previous_layer_holds():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 4)).astype("float32")
    for previous in ([np.nan, 1.0], [np.inf], rng.normal(size=(2, 2)), [[-0.5]]):
        out = ordering.after(keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(np.asarray(previous, "float32")))
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(out), x)
    scalar = ordering.after(keras.ops.convert_to_tensor(np.float32(2.5)), keras.ops.ones((3,)))
    assert tuple(scalar.shape) == () and float(scalar) == 2.5


@pytest.mark.skipif(BACKEND != "jax", reason="XLA's memory analysis of a jax.jit step")
@pytest.mark.parametrize("optimizer_class, directions", [(tf_lamb.LAMB, 1), (tf_lamb.LANS, 2)])
def test_the_compiled_step_holds_one_layers_directions_not_every_layers(optimizer_class, directions):
    # Six 256x256 layers (256 KiB each), slots and weights donated in the order Keras' JAX
    # trainer uses. Updated one layer after the other, the step's scratch memory is at most
    # the largest layer's directions (plus small buffers); without the ordering XLA:CPU held
    # every layer's direction at once (6 x 256 KiB per direction).
    import jax

    rng = np.random.default_rng(9)
    variables = [
        keras.Variable(rng.normal(size=(256, 256)).astype("float32"), name=f"dense_{i}")
        for i in range(6)
    ]
    grads = [keras.ops.convert_to_tensor(rng.normal(size=(256, 256)).astype("float32")) for _ in variables]
    # The ordering is the CPU plan's; asked for here, so the test holds on any device.
    optimizer = optimizer_class(learning_rate=0.01, weight_decay=0.01, step_plan={"ordered": True})
    optimizer.build(variables)

    def apply(trainable_values, optimizer_values, grads):
        return optimizer.stateless_apply(optimizer_values, grads, trainable_values)

    compiled = jax.jit(apply, donate_argnums=(0, 1)).lower(
        [v.value for v in variables], [v.value for v in optimizer.variables], grads
    ).compile()
    layer_bytes = 256 * 256 * 4
    assert compiled.memory_analysis().temp_size_in_bytes <= directions * layer_bytes + 64 * 1024


def _held_by_second_step(optimizer, variables, grads):
    """Bytes TensorFlow's CPU allocator held at most during a step beyond what it held
    before it (the first step traces and compiles)."""
    import tensorflow as tf

    optimizer.build(variables)
    step = tf.function(lambda: optimizer.apply(grads, variables))
    step()
    before = tf.config.experimental.get_memory_info("CPU:0")["current"]
    tf.config.experimental.reset_memory_stats("CPU:0")
    step()
    return tf.config.experimental.get_memory_info("CPU:0")["peak"] - before


def _eight_layers():
    rng = np.random.default_rng(11)
    variables = [
        keras.Variable(rng.normal(size=(512, 512)).astype("float32"), name=f"dense_{i}")
        for i in range(8)
    ]
    return variables, _tensors([rng.normal(size=(512, 512)) for _ in variables])


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's allocator statistics")
@pytest.mark.parametrize("optimizer_class", [tf_lamb.LAMB, tf_lamb.LARS, tf_lamb.LANS, tf_lamb.LARC])
def test_the_xla_step_on_tensorflow_holds_under_half_a_layer_beyond_its_state(optimizer_class):
    # Eight 512x512 layers (1 MiB each, large enough for the norms to fold), XLA-compiled
    # inside the optimizer (the default). Beyond the variables, slots and gradients the step
    # may hold at most one layer's bytes (issue 3); read off TensorFlow's CPU allocator, it
    # holds at most one layer's two norm folds (an eighth of the layer each). Before the
    # layers were ordered and the norms folded once, XLA:CPU stored directions (LAMB: 8 MiB
    # here), many layers' folds (LARS: 1 MiB) and LANS' normalized gradient (17 MiB).
    variables, grads = _eight_layers()
    optimizer = optimizer_class(learning_rate=0.01, weight_decay=0.01)
    held = _held_by_second_step(optimizer, variables, grads)
    assert held <= 512 * 512 * 4 // 2, f"{held / 2**20:.2f} MiB"


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's allocator statistics")
@pytest.mark.parametrize(
    "optimizer_class, layers", [(tf_lamb.LAMB, 1), (tf_lamb.LARS, 1), (tf_lamb.LANS, 3)]
)
def test_graph_mode_holds_its_directions_beyond_its_state(optimizer_class, layers):
    # The same eight 1 MiB layers without XLA: LAMB's direction is one scratch layer
    # (TensorFlow's Adam kernel), LARS' step one layer (then its momentum kernel), LANS' two
    # directions two scratch layers (Adam's and Adagrad's kernels) and, measured, one more
    # layer while they are built (two with no weight decay); the layers run in groups of at
    # most the largest layer's size (here one layer each). Run as they came, the graph
    # executor held 5 MiB for LAMB; LARS in keras.ops form held 2 MiB, LANS 7 MiB.
    variables, grads = _eight_layers()
    optimizer = optimizer_class(learning_rate=0.01, weight_decay=0.01, jit_compile=False)
    held = _held_by_second_step(optimizer, variables, grads)
    # Plus 64 KiB for scalars (norms, ratios) the executor may allocate beside the layers.
    assert held <= layers * 512 * 512 * 4 + 64 * 1024, f"{held / 2**20:.2f} MiB"


def test_memory_groups_cover_the_layers_in_order_within_the_budget():
    sizes = [5, 3, 3, 9, 1, 1, 12, 2]
    groups = tf_graph.memory_groups(sizes, budget=9)
    assert groups == [[0, 1], [2], [3], [4, 5], [6], [7]]
    assert [p for g in groups for p in g] == list(range(len(sizes)))
    assert all(sum(sizes[p] for p in g) <= 9 or len(g) == 1 for g in groups)
    assert tf_graph.memory_groups([4, 4], budget=100) == [[0, 1]]


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute and TensorFlow checkpoints")
def test_a_distributed_step_adds_nothing_to_the_optimizers_checkpoint(tmp_path):
    # Under a strategy the fused step sees each device's raw tf.Variable; holding one as
    # the optimizer's attribute (to order the layers) made Keras track it, so checkpoints
    # gained an entry that a resumed run then failed to restore.
    import tensorflow as tf

    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        variables = [harness.make_variable(p, w) for p, w in zip(PATHS, WEIGHTS)]
        optimizer = tf_lamb.LAMB(learning_rate=0.01, weight_decay=0.01)
        optimizer.build(variables)
    names_before = [v.path for v in optimizer.variables]
    grads = _tensors([0.1 * np.ones_like(w) for w in WEIGHTS])
    tf.function(lambda: strategy.run(lambda: optimizer.apply(grads, variables)))()
    assert [v.path for v in optimizer.variables] == names_before
    saved = tf.train.Checkpoint(optimizer=optimizer).save(str(tmp_path / "ckpt"))
    assert not [name for name, _ in tf.train.list_variables(saved) if "_step" in name]
