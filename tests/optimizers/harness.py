"""Test harness: variables with chosen paths, seeded random gradients, step-by-step checks."""

import contextlib
import re

import keras
import numpy as np

#: The shapes every numerical test covers: scalar, vector, matrix, 4-D kernel, and a
#: zero-initialized vector (a bias or LayerNorm beta, which must train with trust ratio 1).
SHAPES = {
    "scalar": (),
    "vector": (7,),
    "matrix": (5, 3),
    "kernel": (3, 3, 2, 4),
    "zero_bias": (6,),
}

# float32 rounding is ~6e-8 per operation; a step does ~20 of them and the tests run 20-25
# steps whose errors compound through the moments and the weights, so float32 results sit
# within ~1e-5 (relative) of the float64 reference. A wrong formula (a missing bias
# correction, decay in the wrong place, t off by one) moves the weights by > 1e-3.
RTOL = 2e-5
ATOL = 2e-6

#: Keras up to 3.15 resolves any registered name given as a string (``"tf_lamb>LAMB"``);
#: keras-nightly (3.16) resolves only its built-in optimizers, and takes ours as a config dict.
STRINGS_RESOLVE_REGISTERED_NAMES = tuple(
    int(part) for part in re.findall(r"\d+", keras.version())[:2]
) < (3, 16)


def backend():
    return keras.backend.backend()


def make_variable(path, value, dtype="float32"):
    """A keras.Variable whose `path` is `path` (nested name scopes, one per component)."""
    *scopes, name = path.split("/")
    with contextlib.ExitStack() as stack:
        for scope in scopes:
            stack.enter_context(keras.name_scope(scope))
        return keras.Variable(np.asarray(value, dtype), name=name, dtype=dtype)


def initial_weights(seed=0, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    out = {}
    for key, shape in shapes.items():
        out[key] = np.zeros(shape) if key.startswith("zero") else rng.normal(size=shape)
    return out


def random_gradients(steps, seed=1, shapes=SHAPES, scale=1.0):
    """`steps` lists of random normal gradients (never zero), one array per shape."""
    rng = np.random.default_rng(seed)
    return [
        [scale * rng.normal(size=shape) for shape in shapes.values()]
        for _ in range(steps)
    ]


def run_and_compare(
    optimizer, reference, weights, paths, steps=25, seed=1, rtol=RTOL, atol=ATOL, shapes=SHAPES
):
    """Applies the same random gradients to `optimizer` and `reference`; compares every step."""
    variables = [make_variable(p, w) for p, w in zip(paths, weights)]
    for k, grads in enumerate(random_gradients(steps, seed, shapes)):
        optimizer.apply_gradients(
            zip([keras.ops.convert_to_tensor(g, "float32") for g in grads], variables)
        )
        reference.step(grads)
        for v, ref, p in zip(variables, reference.w, paths):
            np.testing.assert_allclose(
                keras.ops.convert_to_numpy(v), ref, rtol=rtol, atol=atol,
                err_msg=f"{p} differs from the float64 reference at step {k + 1}",
            )
    return variables
