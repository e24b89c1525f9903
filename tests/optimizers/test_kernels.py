"""TensorFlow's fused training kernels (tf_lamb.optimizers.kernels), used outside XLA."""

import keras
import numpy as np
import pytest

import tf_lamb
from tests.optimizers import harness

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="TensorFlow's own kernels"
)


@pytest.mark.parametrize("dtype, rtol", [("float32", 2e-6), ("float64", 1e-13)])
@pytest.mark.parametrize("decay", [None, 0.3])
def test_adam_direction_matches_float64_numpy(dtype, rtol, decay):
    from tf_lamb.optimizers import kernels

    rng = np.random.default_rng(3)
    w, m, g = (rng.normal(size=(6, 5)) for _ in range(3))
    v = rng.uniform(0.1, 2.0, size=(6, 5))
    beta_1, beta_2, epsilon = 0.8, 0.95, 1e-3
    variables = [keras.Variable(x.astype(dtype), dtype=dtype) for x in (w, m, v)]
    u = kernels.adam_direction(
        *variables, keras.ops.convert_to_tensor(g.astype(dtype)), beta_1, beta_2, epsilon, decay
    )
    # Reference (float64): Adam's moments, then the direction without bias correction.
    m1 = beta_1 * m + (1 - beta_1) * g
    v1 = beta_2 * v + (1 - beta_2) * g**2
    expected = m1 / (np.sqrt(v1) + epsilon) + (0.0 if decay is None else decay * w)
    # float32: a few roundings of values of order 1 (6e-8 each) and 1 - beta in float32.
    np.testing.assert_allclose(keras.ops.convert_to_numpy(u), expected, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(variables[1]), m1, rtol=rtol)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(variables[2]), v1, rtol=rtol)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(variables[0]), w.astype(dtype))


@pytest.mark.parametrize("dtype, rtol", [("float32", 2e-6), ("float64", 1e-13)])
@pytest.mark.parametrize("decay", [None, 0.3])
def test_scaled_direction_matches_float64_numpy_and_leaves_v_as_it_was(dtype, rtol, decay):
    from tf_lamb.optimizers import kernels

    rng = np.random.default_rng(5)
    w, g = (rng.normal(size=(6, 5)) for _ in range(2))
    v = rng.uniform(0.1, 2.0, size=(6, 5))
    scale, epsilon = 0.37, 1e-3
    variables = [keras.Variable(x.astype(dtype), dtype=dtype) for x in (w, v)]
    u = kernels.scaled_direction(
        *variables, keras.ops.convert_to_tensor(g.astype(dtype)), scale, epsilon, decay
    )
    # Reference (float64): LANS' second direction, the gradient over Adam's denominator.
    expected = scale * g / (np.sqrt(v) + epsilon) + (0.0 if decay is None else decay * w)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(u), expected, rtol=rtol, atol=rtol)
    for variable, x in zip(variables, (w, v)):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), x.astype(dtype))


@pytest.mark.parametrize("dtype, rtol", [("float32", 2e-6), ("float64", 1e-13)])
@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_step_matches_float64_numpy(dtype, rtol, nesterov):
    from tf_lamb.optimizers import kernels

    rng = np.random.default_rng(4)
    w, m, step = (rng.normal(size=(6, 5)) for _ in range(3))
    beta = 0.9
    variables = [keras.Variable(x.astype(dtype), dtype=dtype) for x in (w, m)]
    kernels.momentum_step(
        *variables, keras.ops.convert_to_tensor(step.astype(dtype)), beta, nesterov
    )
    # Reference (float64): LARS' momentum with the step already scaled, then the weights.
    m1 = beta * m + step
    w1 = w - (beta * m1 + step if nesterov else m1)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(variables[1]), m1, rtol=rtol)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(variables[0]), w1, rtol=rtol, atol=rtol)


def test_rounded_beta_is_what_the_kernel_holds():
    from tf_lamb.optimizers import kernels

    assert kernels.rounded(0.999, "float32") == float(np.float32(0.999)) != 0.999
    assert kernels.rounded(0.999, "float64") == 0.999


def test_xla_context_is_seen_inside_jit_compile_only():
    import tensorflow as tf

    from tf_lamb.optimizers import kernels

    seen = {}

    @tf.function
    def graph():
        seen["graph"] = kernels.in_xla_context()
        return tf.constant(0)

    @tf.function(jit_compile=True)
    def xla():
        seen["xla"] = kernels.in_xla_context()
        return tf.constant(0)

    graph(), xla()
    assert seen == {"graph": False, "xla": True}
    assert not kernels.in_xla_context()  # eager


def _op_counts(optimizer, variables, jit_compile=False):
    """Kernel counts in the traced step, which is run once (so it must compile)."""
    import tensorflow as tf

    grads = [tf.ones_like(v) * 0.1 for v in variables]

    @tf.function(jit_compile=jit_compile)
    def step():
        optimizer.apply_gradients(zip(grads, variables))

    step()
    ops = [op.type for op in step.get_concrete_function().graph.get_operations()]
    names = (
        "ResourceApplyAdam",
        "ResourceApplyAdagradV2",
        "ResourceApplyGradientDescent",
        "ResourceApplyMomentum",
    )
    return {name: ops.count(name) for name in names}


@pytest.mark.parametrize(
    "optimizer_class, adam, adagrad, descents",
    [(tf_lamb.LAMB, 1, 0, 1), (tf_lamb.LANS, 1, 1, 2)],
    ids=["lamb", "lans"],
)
@pytest.mark.parametrize("fused", [True, False])
def test_adam_kernels_outside_xla_per_layer(optimizer_class, adam, adagrad, descents, fused):
    # LAMB: the moments and m / d in Adam's kernel, then one descent. LANS: the same, g / d in
    # Adagrad's kernel, and one descent per term.
    variables = [harness.make_variable(f"layer_{i}/kernel", np.full((4, 3), 0.5)) for i in range(3)]
    optimizer = optimizer_class(0.01, weight_decay=0.01, jit_compile=False, fused=fused)
    optimizer.build(variables)
    assert _op_counts(optimizer, variables) == {
        "ResourceApplyAdam": 3 * adam,
        "ResourceApplyAdagradV2": 3 * adagrad,
        "ResourceApplyGradientDescent": 3 * descents,
        "ResourceApplyMomentum": 0,
    }
    # Inside the caller's XLA the keras.ops form compiles instead.
    outer = optimizer_class(0.01, jit_compile=False, fused=fused)
    outer.build(variables)
    assert sum(_op_counts(outer, variables, jit_compile=True).values()) == 0


@pytest.mark.parametrize("jit_compile", [False, True])
def test_classic_lars_outside_xla_runs_one_momentum_kernel_per_layer(jit_compile):
    variables = [harness.make_variable(f"layer_{i}/kernel", np.full((4, 3), 0.5)) for i in range(3)]
    optimizer = tf_lamb.LARS(0.1, weight_decay=0.01, jit_compile=jit_compile)
    optimizer.build(variables)
    # Under XLA the step must compile (it runs once), so it keeps the keras.ops form.
    counts = _op_counts(optimizer, variables, jit_compile)
    assert counts["ResourceApplyMomentum"] == (0 if jit_compile else 3)


@pytest.mark.parametrize(
    "optimizer_class, kwargs, outer_xla",
    [(tf_lamb.LAMB, {}, True), (tf_lamb.LAMB, {"fused": False}, True),
     (tf_lamb.LAMB, {"nesterov": "n-lamb"}, False), (tf_lamb.LAMB, {"beta_1": 0.0}, False),
     (tf_lamb.LANS, {"beta_1": 0.0}, False), (tf_lamb.LANS, {"beta_2": 0.0}, False)],
    ids=["caller_xla", "caller_xla_generic", "nesterov", "beta_1_zero", "lans_beta_1_zero",
         "lans_beta_2_zero"],
)
def test_keras_ops_form_where_the_kernel_would_fail_or_differ(optimizer_class, kwargs, outer_xla):
    # Inside the caller's XLA the kernels do not compile (the step would raise); Nesterov's
    # estimate is not Adam's; at beta_1 = 0 the kernel's m + (g - m) is not exactly g.
    variables = [harness.make_variable("dense/kernel", np.full((4, 3), 0.5))]
    optimizer = optimizer_class(0.01, jit_compile=False, **kwargs)
    optimizer.build(variables)
    counts = _op_counts(optimizer, variables, outer_xla)
    assert counts["ResourceApplyAdam"] == counts["ResourceApplyAdagradV2"] == 0
