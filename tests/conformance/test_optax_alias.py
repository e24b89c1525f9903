"""optax's alias tests, the ``lamb`` and ``lars`` cases, run against ``tf_lamb.LAMB`` / ``LARS``.

Peer file: google-deepmind/optax, ``optax/_src/alias_test.py``, read at commit
2edbcbe2390da13983b92cbef94ac0460ecde1c5 (the file last changed in 0f6d10b5f4b2). optax has
no golden-value test of ``lamb`` or ``lars`` (``float64_test.py`` and ``sharding_test.py``
only list them among many optimizers); the formula checks at the end of this module stand in
for one, against a float64 NumPy re-implementation of optax's two ``chain`` s.

Mapping: ``_OPTIMIZERS_UNDER_TEST``'s two entries, ``lamb(learning_rate=1e-3)`` and
``lars(learning_rate=1.0)``, become ``tf_lamb.LAMB`` and ``tf_lamb.LARS`` with optax's
defaults spelled out (LAMB: betas 0.9/0.999, epsilon 1e-6, no weight decay, weight decay
inside the trust ratio; LARS: the classic form, momentum 0.9 with the learning rate inside
the trace, trust coefficient 0.001, epsilon 0, no weight decay), which are tf_lamb's. An
optax step ``opt.update`` + ``apply_updates`` under ``jax.jit`` becomes, per backend:

- JAX: ``optimizer.stateless_apply`` under ``jax.jit`` (the 10,000-step runs in one
  ``lax.fori_loop``); ``lax.cond`` where optax uses it;
- TensorFlow: ``apply_gradients`` inside a ``tf.function`` (the long runs in a ``tf.range``
  loop);
- PyTorch: eager ``apply_gradients`` (nothing compiles, so the no-recompilation checks are
  skipped there).

The objectives' gradients are written out (conjugated for complex parameters, as optax's
test does). optax's compilation log becomes a trace counter in the compiled function.
Subtests that exercise optax-only API have no counterpart and are left out, each noted at
its test: ``optax.tree.map_params``, ``opt.update``'s extra keyword arguments,
``inject_hyperparams`` (ported as the learning rate set in the optimizer's state),
``MultiSteps`` (ported as Keras' ``gradient_accumulation_steps``). ``test_explicit_dtype``
covers only sgd/adam/adamw and is not ported.

Intended differences (strict xfails, README "Differences from the peers"): complex
parameters (optax's ``lamb`` runs on ``complex64``; tf_lamb takes real floating-point
variables), and LARS's weight decay in the trust ratio's denominator (in the formula check:
optax ``||g + wd w||``, tf_lamb's classic LARS ``||g|| + wd ||w||``).
"""

import contextlib

import keras
import numpy as np
import pytest
from keras import ops

import tf_lamb

BACKEND = keras.backend.backend()

OPTIMIZERS_UNDER_TEST = [
    pytest.param("lamb", {"learning_rate": 1e-3}, id="lamb"),
    pytest.param("lars", {"learning_rate": 1.0}, id="lars"),
]

COMPLEX_XFAIL = pytest.mark.xfail(
    strict=True,
    reason="README: Differences from the peers -- complex parameters are not supported "
    "(optax's lamb takes complex64)",
)


def make(opt_name, **kwargs):
    """optax's ``lamb`` / ``lars`` with their defaults, as tf_lamb optimizers."""
    if opt_name == "lamb":
        defaults = dict(beta_1=0.9, beta_2=0.999, epsilon=1e-6, weight_decay=0.0)
        return tf_lamb.LAMB(**{**defaults, **kwargs})
    defaults = dict(
        weight_decay=0.0, trust_coefficient=0.001, epsilon=0.0, momentum=0.9, nesterov=False
    )
    return tf_lamb.LARS(**{**defaults, **kwargs})


def is_complex(dtype):
    return "complex" in str(dtype)


@contextlib.contextmanager
def x64_precision(enabled):
    """optax's ``utils.x64_precision``: 64-bit types on JAX while the test runs."""
    if BACKEND == "jax" and enabled:
        import jax

        with jax.enable_x64(True):
            yield
    else:
        yield


# The two targets, as optax defines them; each returns (initial, final, gradient), the
# gradient being the conjugated one that optax's test feeds the optimizer.


def setup_parabola(dtype):
    initial_params = np.array([-1.0, 10.0, 1.0], dtype=dtype)
    final_params = np.array([1.0, -1.0, 1.0], dtype=dtype)
    if is_complex(dtype):
        final_params = final_params * (1 + 1j)

    def gradient(params):  # of sum |params - final|**2
        return 2.0 * (params - ops.convert_to_tensor(final_params))

    return initial_params, final_params, gradient


def setup_rosenbrock(dtype):
    a = 1.0
    b = 100.0
    if is_complex(dtype):
        a = a * (1 + 1j)
    initial_params = np.array([0.0, 0.0], dtype=dtype)
    final_params = np.array([a, a**2], dtype=dtype)

    def gradient(params):  # of |a - x|**2 + b |y - x**2|**2
        x, y = params[0], params[1]
        residual = y - x * x
        x_bar = ops.conj(x) if is_complex(dtype) else x
        return ops.stack([-2.0 * (a - x) - 4.0 * b * x_bar * residual, 2.0 * b * residual])

    return initial_params, final_params, gradient


TARGETS = [
    pytest.param(setup_parabola, id="parabola"),
    pytest.param(setup_rosenbrock, id="rosenbrock"),
]


def run_steps(optimizer, variable, gradient, steps):
    """``steps`` compiled steps of ``optimizer`` on ``variable`` (see the module docstring)."""
    optimizer.build([variable])
    if BACKEND == "tensorflow":
        import tensorflow as tf

        @tf.function
        def run(n):
            for _ in tf.range(n):
                optimizer.apply_gradients([(gradient(variable.value), variable)])

        run(tf.constant(steps))
    elif BACKEND == "jax":
        import jax

        @jax.jit
        def run(params, state):
            def body(_, carry):
                params, state = carry
                return optimizer.stateless_apply(state, [gradient(params[0])], params)

            return jax.lax.fori_loop(0, steps, body, (params, state))

        params, state = run([variable.value], [v.value for v in optimizer.variables])
        variable.assign(params[0])
        for ref, value in zip(optimizer.variables, state):
            ref.assign(value)
    else:
        for _ in range(steps):
            optimizer.apply_gradients([(gradient(variable.value), variable)])


def compiled_step(optimizer, variable, gradient):
    """A compiled one-step function and its trace log (one entry per trace), or None on
    PyTorch. Call it with no argument; on JAX it carries its state itself."""
    traces = []
    optimizer.build([variable])
    if BACKEND == "tensorflow":
        import tensorflow as tf

        @tf.function
        def step():
            traces.append(1)
            optimizer.apply_gradients([(gradient(variable.value), variable)])

        return step, traces
    if BACKEND == "jax":
        import jax

        @jax.jit
        def jitted(params, state):
            traces.append(1)
            return optimizer.stateless_apply(state, [gradient(params[0])], params)

        carry = {"params": [variable.value], "state": [v.value for v in optimizer.variables]}

        def step():
            carry["params"], carry["state"] = jitted(carry["params"], carry["state"])

        return step, traces
    return None, traces


def _optimization_params():
    for opt in OPTIMIZERS_UNDER_TEST:
        opt_name = opt.values[0]
        for target in TARGETS:
            for dtype in ("float32", "complex64"):
                if opt_name == "lars" and is_complex(dtype):
                    continue  # optax: "lars does not support complex parameters".
                marks = [COMPLEX_XFAIL] if is_complex(dtype) else []
                yield pytest.param(
                    *opt.values, target.values[0], dtype,
                    id=f"{opt.id}-{target.id}-{dtype}", marks=marks,
                )


@pytest.mark.parametrize("opt_name, opt_kwargs, target, dtype", list(_optimization_params()))
def test_optimization(opt_name, opt_kwargs, target, dtype):
    # optax's subtest "Test that tree_map_params works" exercises optax.tree.map_params,
    # which has no Keras counterpart. The recompilation subtests are
    # test_optimization_does_not_recompile below.
    optimizer = make(opt_name, **opt_kwargs)
    initial_params, final_params, gradient = target(dtype)
    variable = keras.Variable(initial_params, dtype=dtype)

    run_steps(optimizer, variable, gradient, 10000)

    np.testing.assert_allclose(
        ops.convert_to_numpy(variable), final_params, rtol=3e-2, atol=3e-2
    )


@pytest.mark.skipif(BACKEND == "torch", reason="PyTorch runs eagerly: nothing compiles")
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("opt_name, opt_kwargs", OPTIMIZERS_UNDER_TEST)
def test_optimization_does_not_recompile(opt_name, opt_kwargs, target):
    # optax checks this inside test_optimization (its second step, and again from a fresh
    # state): the second call of the compiled step must not compile again.
    optimizer = make(opt_name, **opt_kwargs)
    initial_params, _, gradient = target("float32")
    variable = keras.Variable(initial_params)
    step, traces = compiled_step(optimizer, variable, gradient)
    step()
    compiled = len(traces)
    step()
    assert len(traces) == compiled, 'Optimizer recompiles on second call to "update".'


@pytest.mark.parametrize("opt_name, opt_kwargs", OPTIMIZERS_UNDER_TEST)
def test_optimizers_accept_extra_args(opt_name, opt_kwargs):
    # optax passes an unexpected keyword argument to `opt.update`; Keras' `apply` has no
    # such channel, so what is left is the test's two steps on the Rosenbrock function.
    optimizer = make(opt_name, **opt_kwargs)
    initial_params, _, gradient = setup_rosenbrock("float32")
    variable = keras.Variable(initial_params)
    for _ in range(2):
        optimizer.apply_gradients([(gradient(variable.value), variable)])


@pytest.mark.parametrize("opt_name, opt_kwargs", OPTIMIZERS_UNDER_TEST)
def test_optimizers_can_be_wrapped_in_inject_hyperparams(opt_name, opt_kwargs):
    # optax's inject_hyperparams moves the hyperparameters into the optimizer state. A Keras
    # optimizer holds its learning rate in its state already (a variable): the "injected"
    # optimizer is built with another learning rate and given the test's one through that
    # state before the step; updates and states must match the plain optimizer's.
    params = [-np.ones((2, 3), "float32"), np.ones((2, 5, 2), "float32")]
    grads = [np.ones((2, 3), "float32"), -np.ones((2, 5, 2), "float32")]

    optimizer = make(opt_name, **opt_kwargs)
    optimizer_inject = make(opt_name, **{**opt_kwargs, "learning_rate": 0.5})
    optimizer_inject.learning_rate = opt_kwargs["learning_rate"]

    variables = [keras.Variable(p) for p in params]
    variables_inject = [keras.Variable(p) for p in params]
    optimizer.apply([ops.convert_to_tensor(g) for g in grads], variables)
    optimizer_inject.apply([ops.convert_to_tensor(g) for g in grads], variables_inject)

    updates = [ops.convert_to_numpy(v) - p for v, p in zip(variables, params)]
    updates_inject = [ops.convert_to_numpy(v) - p for v, p in zip(variables_inject, params)]
    # Equality of updates.
    for actual, desired in zip(updates_inject, updates):
        np.testing.assert_allclose(actual, desired, rtol=1e-3, atol=0.0)
    # Equality of new optimizer states.
    assert len(optimizer_inject.variables) == len(optimizer.variables)
    for actual, desired in zip(optimizer_inject.variables, optimizer.variables):
        np.testing.assert_allclose(
            ops.convert_to_numpy(actual), ops.convert_to_numpy(desired), rtol=1e-4, atol=0.0
        )


def _dtype_params(dtypes, complex_mark=COMPLEX_XFAIL):
    out = []
    for opt in OPTIMIZERS_UNDER_TEST:
        for dtype in dtypes:
            marks = [complex_mark] if is_complex(dtype) else []
            out.append(pytest.param(*opt.values, dtype, id=f"{opt.id}-{dtype}", marks=marks))
    return out


def _apply_jitted(optimizer, variable, grads):
    """One step of ``optimizer`` under ``jax.jit`` (stateless): the new parameter value."""
    import jax

    optimizer.build([variable])
    state = [v.value for v in optimizer.variables]
    params, _ = jax.jit(optimizer.stateless_apply)(state, [grads], [variable.value])
    return params[0]


@pytest.mark.parametrize("opt_name, opt_kwargs, dtype", _dtype_params(["bfloat16", "float32"]))
def test_preserve_dtype(opt_name, opt_kwargs, dtype):
    # The optimizer returns updates of the gradients' dtype: on JAX the new parameter value
    # that `stateless_apply` returns; elsewhere the variable after the step.
    optimizer = make(opt_name, **opt_kwargs)
    params = np.array([1.0, 2.0], dtype="float32")
    variable = keras.Variable(params, dtype=dtype)
    grads = ops.cast(2.0 * ops.convert_to_tensor(params), dtype)  # the gradient of sum(x**2)
    if BACKEND == "jax":
        updated = _apply_jitted(optimizer, variable, grads)
    else:
        optimizer.apply_gradients([(grads, variable)])
        updated = variable.value
    assert keras.backend.standardize_dtype(updated.dtype) == keras.backend.standardize_dtype(
        grads.dtype
    )




@pytest.mark.parametrize(
    "opt_name, opt_kwargs, dtype",
    _dtype_params(
        ["float16", "bfloat16", "float32", "float64", "complex64", "complex128"],
    ),
)
def test_state_shape_dtype_shard_stability(opt_name, opt_kwargs, dtype):
    with x64_precision(dtype in ("float64", "complex128")):
        optimizer = make(opt_name, **opt_kwargs)
        initial_params, _, gradient = setup_parabola(dtype)
        variable = keras.Variable(initial_params, dtype=dtype)
        optimizer.build([variable])

        def conj(g):
            return ops.conj(g) if is_complex(dtype) else g

        if BACKEND == "jax":
            import jax

            @jax.jit
            def step(params, state):
                grads = [conj(gradient(params[0]))]
                # As optax: lax.cond to defeat compiler optimizations and check stability.
                cond = jax.random.randint(jax.random.key(0), (), 0, 2) == 0
                return jax.lax.cond(
                    cond,
                    lambda: optimizer.stateless_apply(state, grads, params),
                    lambda: (params, state),
                )

            params = [variable.value]
            state = [v.value for v in optimizer.variables]
            for _ in range(2):
                params, new_state = step(params, state)
                assert keras.backend.standardize_dtype(params[0].dtype) == dtype
                cond = jax.random.randint(jax.random.key(0), (), 0, 2) == 0
                state = jax.lax.cond(cond, lambda: state, lambda: new_state)  # noqa: B023
        else:
            # Variables keep their dtype; what can break is the step itself, or a slot's
            # shape or dtype.
            before = [(tuple(v.shape), v.dtype) for v in optimizer.variables]
            for _ in range(2):
                optimizer.apply_gradients([(conj(gradient(variable.value)), variable)])
                assert keras.backend.standardize_dtype(variable.value.dtype) == dtype
            assert [(tuple(v.shape), v.dtype) for v in optimizer.variables] == before


@pytest.mark.parametrize("opt_name, opt_kwargs, dtype", _dtype_params(["bfloat16", "float32"]))
def test_gradient_accumulation(opt_name, opt_kwargs, dtype):
    # optax.MultiSteps(every_k_schedule=4) becomes gradient_accumulation_steps=4: the first
    # of four micro-steps leaves the parameters exactly as they were (a zero update).
    optimizer = make(opt_name, gradient_accumulation_steps=4, **opt_kwargs)
    params = np.array([1.0, 2.0], dtype="float32")
    variable = keras.Variable(params, dtype=dtype)
    grads = ops.cast(2.0 * ops.convert_to_tensor(params), dtype)
    before = ops.convert_to_numpy(ops.cast(variable.value, "float32"))
    if BACKEND == "jax":
        updated = _apply_jitted(optimizer, variable, grads)
    else:
        optimizer.apply_gradients([(grads, variable)])
        updated = variable.value
    updates = ops.convert_to_numpy(ops.cast(updated, "float32")) - before
    np.testing.assert_array_equal(updates, np.zeros_like(updates))


# Formula checks (not in the peer file, see the module docstring): a few steps of tf_lamb
# against float64 NumPy re-implementations of optax's chains, on a matrix and a vector.


def optax_lamb_numpy(params, grads_seq, lr, weight_decay, b1=0.9, b2=0.999, eps=1e-6):
    """optax.lamb: scale_by_adam, add_decayed_weights, scale_by_trust_ratio, -lr."""
    params = [np.float64(p) for p in params]
    mu = [np.zeros_like(p) for p in params]
    nu = [np.zeros_like(p) for p in params]
    for t, grads in enumerate(grads_seq, start=1):
        for i, g in enumerate(grads):
            mu[i] = b1 * mu[i] + (1 - b1) * g
            nu[i] = b2 * nu[i] + (1 - b2) * g * g
            u = (mu[i] / (1 - b1**t)) / (np.sqrt(nu[i] / (1 - b2**t)) + eps)
            u = u + weight_decay * params[i]
            w_norm, u_norm = np.linalg.norm(params[i]), np.linalg.norm(u)
            ratio = 1.0 if w_norm == 0 or u_norm == 0 else w_norm / u_norm
            params[i] = params[i] - lr * ratio * u
    return params


def optax_lars_numpy(params, grads_seq, lr, weight_decay, momentum=0.9, eta=0.001, eps=0.0):
    """optax.lars: add_decayed_weights, scale_by_trust_ratio (eta ||w|| / (||g + wd w|| +
    eps)), -lr, trace(momentum)."""
    params = [np.float64(p) for p in params]
    trace = [np.zeros_like(p) for p in params]
    for grads in grads_seq:
        for i, g in enumerate(grads):
            u = g + weight_decay * params[i]
            w_norm, u_norm = np.linalg.norm(params[i]), np.linalg.norm(u)
            ratio = 1.0 if w_norm == 0 or u_norm == 0 else eta * w_norm / (u_norm + eps)
            trace[i] = lr * ratio * u + momentum * trace[i]
            params[i] = params[i] - trace[i]
    return params


def _compare_with_numpy(optimizer, reference, steps=5):
    rng = np.random.default_rng(0)
    params = [rng.normal(size=(3, 4)), rng.normal(size=(5,))]
    grads_seq = [[rng.normal(size=p.shape) for p in params] for _ in range(steps)]
    variables = [keras.Variable(p.astype("float32")) for p in params]
    for grads in grads_seq:
        optimizer.apply([ops.convert_to_tensor(g.astype("float32")) for g in grads], variables)
    expected = reference([p.astype("float32") for p in params], grads_seq)
    for variable, want in zip(variables, expected):
        np.testing.assert_allclose(ops.convert_to_numpy(variable), want, rtol=2e-5, atol=2e-6)


def test_lamb_matches_optax_formula():
    optimizer = make("lamb", learning_rate=1e-2, weight_decay=0.1)
    _compare_with_numpy(
        optimizer, lambda p, g: optax_lamb_numpy(p, g, lr=1e-2, weight_decay=0.1)
    )


def test_lars_matches_optax_formula():
    optimizer = make("lars", learning_rate=1.0)
    _compare_with_numpy(optimizer, lambda p, g: optax_lars_numpy(p, g, lr=1.0, weight_decay=0.0))


@pytest.mark.xfail(
    strict=True,
    reason="README: Differences from the peers -- LARS trust ratio: tf_lamb's classic "
    "form divides by ||g|| + wd ||w||, optax and Model Garden by ||g + wd w||",
)
def test_lars_matches_optax_formula_with_weight_decay():
    optimizer = make("lars", learning_rate=1.0, weight_decay=0.1)
    _compare_with_numpy(optimizer, lambda p, g: optax_lars_numpy(p, g, lr=1.0, weight_decay=0.1))
