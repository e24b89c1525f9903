"""The step plan: each fast path, switched on alone over the reference path, against the
float64 references; and which plan each runtime gets."""

import keras
import numpy as np
import pytest

import tf_lamb
from tests.optimizers import harness
from tests.optimizers.reference import LAMBReference, LANSReference, LARCReference, LARSReference
from tf_lamb.optimizers import plan

BACKEND = keras.backend.backend()

# A 512x256 layer is large enough for the "fold" norm to fold into eighths.
SHAPES = dict(harness.SHAPES, large=(512, 256))
PATHS = ["m/scale", "m/ffn/vector", "m/ffn/kernel", "m/conv/kernel", "m/layer_norm/beta", "m/big/kernel"]
WEIGHTS = list(harness.initial_weights(seed=40, shapes=SHAPES).values())
EXCLUDE = {"exclude_from_weight_decay": ["layer_norm", "scale"]}
DECAYS = [0, 1, 1, 1, 0, 1]

OPTIMIZERS = {
    "lamb": (
        lambda **kw: tf_lamb.LAMB(learning_rate=0.01, weight_decay=0.01, **EXCLUDE, **kw),
        lambda: LAMBReference(WEIGHTS, 0.01, wd=0.01, decays=DECAYS, adapts=DECAYS),
    ),
    "lans": (
        lambda **kw: tf_lamb.LANS(learning_rate=0.01, weight_decay=0.01, **EXCLUDE, **kw),
        lambda: LANSReference(WEIGHTS, 0.01, wd=0.01, decays=DECAYS, adapts=DECAYS),
    ),
    "lars": (
        lambda **kw: tf_lamb.LARS(learning_rate=1.0, weight_decay=0.02, **EXCLUDE, **kw),
        lambda: LARSReference(WEIGHTS, 1.0, wd=0.02, decays=DECAYS, adapts=DECAYS),
    ),
    "larc": (
        lambda **kw: tf_lamb.LARC(learning_rate=0.1, weight_decay=0.01, **EXCLUDE, **kw),
        lambda: LARCReference(WEIGHTS, 0.1, wd=0.01, decays=DECAYS, adapts=DECAYS),
    ),
    "lars_paper": (
        lambda **kw: tf_lamb.LARS(
            learning_rate=0.01, form="paper", weight_decay=0.02, **EXCLUDE, **kw
        ),
        lambda: LARSReference(WEIGHTS, 0.01, form="paper", wd=0.02, decays=DECAYS, adapts=DECAYS),
    ),
}

# (fast path, the plan's fields, TensorFlow's jit_compile): each alone over the reference.
FAST_PATHS = {
    "fold": ({"norm": "fold"}, True),
    "norm": ({"norm": "norm"}, True),
    "two_pass": ({"two_pass": True}, True),
    "ordered": ({"ordered": True}, True),
    "l2_loss": ({"norm": "l2_loss"}, False),
    "kernels": ({"kernels": True}, False),
    "groups": ({"groups": True}, False),
}
TENSORFLOW_ONLY = ("l2_loss", "kernels", "groups")


def only(fields):
    """A full ``step_plan`` dict: the reference plan with ``fields`` switched on."""
    return {**{f: getattr(plan.REFERENCE, f) for f in plan.FIELDS}, **fields}


@pytest.mark.parametrize("fast_path", sorted(FAST_PATHS))
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_each_fast_path_alone_matches_the_float64_reference(name, fast_path):
    fields, jit_compile = FAST_PATHS[fast_path]
    if fast_path in TENSORFLOW_ONLY and BACKEND != "tensorflow":
        pytest.skip("a TensorFlow fast path")
    make, reference = OPTIMIZERS[name]
    optimizer = make(step_plan=only(fields), jit_compile=jit_compile)
    harness.run_and_compare(optimizer, reference(), WEIGHTS, PATHS, steps=8, shapes=SHAPES)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's kernels")
def test_the_kernels_fast_path_runs_the_kernels_and_the_reference_plan_does_not():
    import tensorflow as tf

    def kernel_ops(step_plan):
        optimizer = OPTIMIZERS["lamb"][0](step_plan=step_plan, jit_compile=False)
        variables = [harness.make_variable(p, w) for p, w in zip(PATHS, WEIGHTS)]
        optimizer.build(variables)
        grads = [keras.ops.convert_to_tensor(w.astype("float32")) for w in WEIGHTS]
        graph = tf.function(lambda: optimizer.apply(grads, variables)).get_concrete_function().graph
        return sum(op.type == "ResourceApplyAdam" for op in graph.get_operations())

    assert kernel_ops(only({"kernels": True})) == len(WEIGHTS)
    assert kernel_ops("reference") == 0


@pytest.mark.parametrize(
    "backend, on_cpu, compiled, stored, expected",
    [
        ("tensorflow", True, True, False, plan.StepPlan("fold", True, True, False, False)),
        ("tensorflow", True, False, False, plan.StepPlan("l2_loss", False, False, True, True)),
        ("tensorflow", False, True, False, plan.REFERENCE),
        ("tensorflow", False, False, False, plan.REFERENCE),
        ("jax", True, True, False, plan.StepPlan(ordered=True)),
        ("jax", True, True, True, plan.REFERENCE),
        ("jax", False, True, False, plan.REFERENCE),
        ("torch", True, False, False, plan.StepPlan(norm="norm")),
        ("torch", False, False, False, plan.StepPlan(norm="norm")),
    ],
)
def test_the_cpu_tricks_run_on_a_cpu_only(backend, on_cpu, compiled, stored, expected):
    assert plan.plan_for(backend, on_cpu, compiled, stored) == expected


def test_step_plan_overrides_the_runtimes_plan_and_round_trips():
    optimizer = tf_lamb.LAMB(step_plan={"ordered": False})
    variable = harness.make_variable("m/kernel", np.ones((2, 2)))
    chosen = optimizer._plan(variable, compiled=False)
    assert chosen.ordered is False
    assert tf_lamb.LAMB.from_config(optimizer.get_config()).step_plan == {"ordered": False}
    assert tf_lamb.LAMB(step_plan="reference")._plan(variable, compiled=True) == plan.REFERENCE


@pytest.mark.parametrize(
    "step_plan, message",
    [
        ("fast", "step_plan"),
        ({"sorted": True}, "step_plan"),
        ({"ordered": 1}, "step_plan\\['ordered'\\]"),
        ({"norm": "l1"}, "norm"),
    ],
)
def test_a_bad_step_plan_is_refused_by_name(step_plan, message):
    with pytest.raises(ValueError, match=message):
        tf_lamb.LAMB(step_plan=step_plan)


@pytest.mark.skipif(BACKEND == "tensorflow", reason="left out off TensorFlow")
def test_a_tensorflow_fast_path_is_left_out_on_other_backends():
    # A configuration saved on TensorFlow loads on JAX and PyTorch, without those paths.
    fields = {"kernels": True, "groups": True, "norm": "l2_loss"}
    optimizer = tf_lamb.LAMB.from_config(tf_lamb.LAMB(step_plan=fields).get_config())
    chosen = optimizer._plan(harness.make_variable("m/kernel", np.ones((2, 2))), compiled=False)
    assert (chosen.kernels, chosen.groups, chosen.norm) == (False, False, "reduce")


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's object tracking")
def test_a_step_plan_is_not_tracked_into_checkpoints():
    import tensorflow as tf

    optimizer = tf_lamb.LAMB(step_plan={"ordered": False})
    optimizer.build([harness.make_variable("m/kernel", np.ones((2, 2)))])
    names = [name for name, _ in tf.train.Checkpoint(optimizer=optimizer)._checkpoint_dependencies]
    assert names and not [c for c in optimizer._trackable_children() if "plan" in c]
