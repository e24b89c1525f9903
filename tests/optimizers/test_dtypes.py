"""Every optimizer on float16, bfloat16, float32 and float64 variables, against float64 NumPy.

A 16-bit layer is updated in float32 and stored rounded: its moments, norms, trust ratios and
step are computed from the stored 16-bit values, and each new value is rounded once when it
is stored. The reference does the same in float64, rounding what the optimizer keeps in
variables (weights and slots) to the variable's dtype (``store``), so the two differ only
where float32 and float64 arithmetic round a stored value to neighbouring 16-bit numbers.
"""

import keras
import ml_dtypes
import numpy as np
import pytest

import tf_lamb
from tests.optimizers import harness
from tests.optimizers.reference import LAMBReference, LANSReference, LARCReference, LARSReference

# Every test runs on the fused step and on Keras' per-variable loop (conftest.py).
pytestmark = pytest.mark.usefixtures("optimizer_path")

DTYPES = ["float16", "bfloat16", "float32", "float64"]

#: Tolerances per dtype, over 8 steps that move each layer by about 5% of its norm.
#: 16-bit: a layer's relative error in norm, ``||w - w_ref|| / ||w_ref||``, at most 5x and
#: 3x what was measured (8e-5 and 2e-3; one unit in the last place is 9.8e-4 and 7.8e-3). A
#: stored value may round the other way where float32 and float64 disagree, which moves a few
#: elements by more than their own last place in the next steps, so elements are not compared
#: one by one. Moments and directions computed in 16-bit, or a norm that overflows float16,
#: exceed it; so does a direction wrong by a few percent. float32: the harness' elementwise bound (state kept in float64).
#: float64: elementwise, the same formulas in another order (~1e-15 per operation).
TOLERANCES = {
    "float16": (4e-4, None),
    "bfloat16": (6e-3, None),
    "float32": (harness.RTOL, harness.ATOL),
    "float64": (1e-11, 1e-13),
}

SHAPES = {
    "vector": (7,),
    "matrix": (5, 3),
    # 4096 elements of standard deviation 4: ||w||**2 is about 65,500, float16's largest
    # finite value, so a norm not accumulated in float32 is infinite or wrong.
    "large": (64, 64),
    "zero_bias": (6,),
}
PATHS = ["block/scale/vector", "block/dense/kernel", "block/embedding/table", "block/dense/bias"]

CASES = {
    "lamb": (tf_lamb.LAMB, {"weight_decay": 0.05}, LAMBReference, {"wd": 0.05}),
    "lamb_decoupled": (
        tf_lamb.LAMB,
        {"weight_decay": 0.05, "weight_decay_mode": "decoupled"},
        LAMBReference,
        {"wd": 0.05, "mode": "decoupled"},
    ),
    "n_lamb": (
        tf_lamb.LAMB,
        {"nesterov": "nn-lamb", "weight_decay": 0.05},
        LAMBReference,
        {"nesterov": "nn-lamb", "wd": 0.05},
    ),
    "lans": (tf_lamb.LANS, {"weight_decay": 0.05}, LANSReference, {"wd": 0.05}),
    "lans_l2": (
        tf_lamb.LANS,
        {"weight_decay": 0.05, "weight_decay_mode": "l2"},
        LANSReference,
        {"wd": 0.05, "mode": "l2"},
    ),
    "lars_paper": (
        tf_lamb.LARS,
        {"form": "paper", "weight_decay": 0.05},
        LARSReference,
        {"form": "paper", "wd": 0.05},
    ),
    "lars_classic": (
        tf_lamb.LARS,
        {"weight_decay": 0.05, "trust_coefficient": 0.02},
        LARSReference,
        {"wd": 0.05, "eta": 0.02},
    ),
    "larc": (tf_lamb.LARC, {"weight_decay": 0.05}, LARCReference, {"wd": 0.05}),
    # A cap that binds: Keras' PyTorch `minimum` once rounded float64 ratios to float32.
    "lamb_capped": (
        tf_lamb.LAMB,
        {"weight_decay": 0.05, "max_trust_ratio": 0.3},
        LAMBReference,
        {"wd": 0.05, "cap": 0.3},
    ),
}


def _rounding(dtype):
    """float64 -> ``dtype`` -> float64, as a variable of ``dtype`` stores a value."""
    numpy_dtype = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)
    return lambda x: np.asarray(np.asarray(x, np.float64).astype(numpy_dtype), np.float64)


def _initial_weights():
    rng = np.random.default_rng(7)
    weights = {}
    for key, shape in SHAPES.items():
        scale = 4.0 if key == "large" else 1.0
        weights[key] = np.zeros(shape) if key.startswith("zero") else scale * rng.normal(size=shape)
    return list(weights.values())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_dtype_matches_float64_reference_with_rounded_storage(case, dtype):
    if dtype == "float64" and harness.backend() == "jax":
        import jax

        if not jax.config.read("jax_enable_x64"):
            pytest.skip("JAX holds float64 variables as float32 unless jax_enable_x64 is set")
    optimizer_class, kwargs, reference_class, reference_kwargs = CASES[case]
    store = _rounding(dtype) if dtype in ("float16", "bfloat16") else None
    rtol, atol = TOLERANCES[dtype]
    weights = _initial_weights()
    lr = 0.05 if optimizer_class is not tf_lamb.LARS or kwargs.get("form") == "paper" else 0.5
    optimizer = optimizer_class(learning_rate=lr, **kwargs)
    # Keras keeps the learning rate in a float32 variable, whatever the variables' dtype.
    reference = reference_class(weights, float(np.float32(lr)), store=store, **reference_kwargs)
    variables = [harness.make_variable(p, w, dtype) for p, w in zip(PATHS, weights)]
    gradients = harness.random_gradients(8, seed=3, shapes=SHAPES)
    for step, grads in enumerate(gradients, start=1):
        tensors = [keras.ops.convert_to_tensor(g, dtype) for g in grads]
        optimizer.apply_gradients(zip(tensors, variables))
        # The reference takes the gradients as the optimizer received them.
        reference.step([keras.ops.convert_to_numpy(keras.ops.cast(t, "float64")) for t in tensors])
        for variable, expected, path in zip(variables, reference.w, PATHS):
            assert keras.backend.standardize_dtype(variable.dtype) == dtype
            actual = keras.ops.convert_to_numpy(keras.ops.cast(variable, "float64"))
            message = f"{path} ({dtype}) differs from the float64 reference at step {step}"
            if store is None:
                np.testing.assert_allclose(actual, expected, rtol, atol, err_msg=message)
            else:
                error = np.linalg.norm(actual - expected) / np.linalg.norm(expected)
                assert error <= rtol, f"{message}: relative error {error:.2e} > {rtol:.2e}"
        # The trust ratios, kept in float32 (compared where the reference records them);
        # a 16-bit ratio moves with each rounding of its direction, so within 10x the
        # weights' bound.
        ratios = optimizer.layer_statistics()["trust_ratio"]
        ratio_rtol = 10 * rtol if store is not None else max(rtol, 1e-6)
        for i, recorded in enumerate(reference.statistics):
            if recorded is not None:
                np.testing.assert_allclose(ratios[i], recorded[2], rtol=ratio_rtol)
    assert optimizer.layer_statistics()["trust_ratio"].dtype == np.float32
    for slot in optimizer.variables:
        if slot.name not in ("iteration", "learning_rate", "layer_statistics"):
            # Slots as Keras makes them: the variable's dtype.
            assert keras.backend.standardize_dtype(slot.dtype) == dtype, slot.name

