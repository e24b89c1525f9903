"""LARC (NVIDIA apex's ``LARC`` around momentum SGD) against the float64 reference, step by step.

apex (``apex/parallel/LARC.py``, ``LARC.step``) rescales each parameter's gradient and then
lets ``torch.optim.SGD`` (momentum, dampening 0) step:

    local = eta * ||w|| / (||g|| + wd ||w|| + eps)        only where ||w|| != 0 and ||g|| != 0
    clip:  local = min(local / lr, 1)                      (lr * local = min(lr * local, lr))
    g = (g + wd * w) * local
    buf = momentum * buf + g;  w = w - lr * (g + momentum * buf if nesterov else buf)

tf_lamb keeps its own zero-norm rule (ratio 1, weight decay still added), see the last tests.
"""

import inspect
import json

import keras
import numpy as np
import pytest

import tf_lamb
from tests.optimizers import harness
from tests.optimizers.reference import LARCReference, LARSReference

# Every test runs on each of conftest.py's paths (the fused step, Keras' per-variable loop...).
pytestmark = pytest.mark.usefixtures("optimizer_path")

PATHS = ["bert/scale", "bert/dense/bias", "bert/dense/kernel", "bert/conv/kernel", "bert/layer_norm/beta"]
WEIGHTS = list(harness.initial_weights(seed=10).values())

# Clip mode: with eta 0.02 the layers' local rates eta ||w|| / ||g|| sit around 0.02, so at
# lr 0.02 some steps clip (lr itself) and others do not. Scale mode multiplies lr by the
# ratio, so it is run at lr 1 (rates around 0.02 again).
CLIP_LR, SCALE_LR = 0.02, 1.0

# Keras' PolynomialDecay from 0.052 to 0.002 over 20 steps (power 1): early on lr is mostly
# above the layers' local rates (the adaptive branch), late it is below (the clipped branch);
# test_larc_schedule_crosses_both_clip_branches checks that both occur, in every layer.
def _decaying_schedule():
    return keras.optimizers.schedules.PolynomialDecay(0.052, 20, end_learning_rate=0.002)


def _decaying_lr(t):
    return (0.052 - 0.002) * (1 - min(t, 20) / 20) + 0.002


# A warmup from lr = 0 (PolynomialDecay from 0 up to 0.02 over 5 steps): at step 1 apex's
# local / lr is local / 0 = inf, clipped to 1, so the buffer takes g + wd w and the weights
# do not move; later steps carry that buffer.
def _warmup_from_zero():
    return keras.optimizers.schedules.PolynomialDecay(0.0, 5, end_learning_rate=0.02)


def _warmup_lr(t):
    return 0.02 * min(t, 5) / 5


# (tf_lamb.LARC kwargs, LARCReference kwargs); learning_rate / lr default to CLIP_LR.
CASES = {
    "defaults_clip": ({}, {}),
    "scale_mode": (
        {"learning_rate": SCALE_LR, "clip": False}, {"lr": SCALE_LR, "clip": False}
    ),
    "nesterov": ({"nesterov": True}, {"nesterov": True}),
    "scale_mode_nesterov_weight_decay": (
        {"learning_rate": SCALE_LR, "clip": False, "nesterov": True, "weight_decay": 0.05},
        {"lr": SCALE_LR, "clip": False, "nesterov": True, "wd": 0.05},
    ),
    "weight_decay_and_epsilon": (
        {"weight_decay": 0.05, "epsilon": 1e-2}, {"wd": 0.05, "eps": 1e-2}
    ),
    "bert_exclusions": (
        # tf_lamb's rule: the adaptation list falls back to the weight-decay list.
        {"weight_decay": 0.05, "exclude_from_weight_decay": ["bias", "layer_norm"]},
        {"wd": 0.05, "decays": [1, 0, 1, 1, 0], "adapts": [1, 0, 1, 1, 0]},
    ),
    "bert_exclusions_as_apex_param_groups": (
        # apex: bias and LayerNorm in a param group with weight_decay 0, still adapted.
        {"weight_decay": 0.05, "exclude_from_weight_decay": ["bias", "layer_norm"],
         "exclude_from_layer_adaptation": []},
        {"wd": 0.05, "decays": [1, 0, 1, 1, 0]},
    ),
    "exclude_from_layer_adaptation": (
        {"weight_decay": 0.05, "exclude_from_layer_adaptation": ["conv", "scale"]},
        {"wd": 0.05, "adapts": [0, 1, 1, 0, 1]},
    ),
    "decaying_schedule": (
        {"learning_rate": _decaying_schedule(), "weight_decay": 0.01},
        {"lr": _decaying_lr, "wd": 0.01},
    ),
    "warmup_from_zero": (
        {"learning_rate": _warmup_from_zero(), "weight_decay": 0.01},
        {"lr": _warmup_lr, "wd": 0.01},
    ),
    "max_trust_ratio_clip": (
        # The cap binds before the clip: local = min(local, 0.015) < lr, every step adaptive.
        {"max_trust_ratio": 0.015}, {"cap": 0.015}
    ),
    "max_trust_ratio_scale_mode": (
        {"learning_rate": SCALE_LR, "clip": False, "max_trust_ratio": 0.015},
        {"lr": SCALE_LR, "clip": False, "cap": 0.015},
    ),
    "trust_coefficient_momentum_bounds": (
        {"trust_coefficient": 0.005, "momentum": 0.5, "weight_norm_bounds": (1.5, 4.0),
         "weight_decay": 0.01},
        {"eta": 0.005, "momentum": 0.5, "bounds": (1.5, 4.0), "wd": 0.01},
    ),
}


def _reference(ref_kwargs):
    ref_kwargs = dict(ref_kwargs)
    lr = ref_kwargs.pop("lr", CLIP_LR)
    return LARCReference(WEIGHTS, lr, **ref_kwargs)


@pytest.mark.parametrize("case", sorted(CASES))
def test_larc_matches_float64_reference_every_step(case):
    # Tolerance: harness.RTOL / ATOL, float32 rounding compounded over 25 steps (~1e-5
    # relative); a wrong formula moves the weights by > 1e-3.
    kwargs, ref_kwargs = CASES[case]
    kwargs = {"learning_rate": CLIP_LR, **kwargs}
    optimizer = tf_lamb.LARC(**kwargs)
    reference = _reference(ref_kwargs)
    harness.run_and_compare(optimizer, reference, WEIGHTS, PATHS)


def test_larc_cases_exercise_what_they_claim():
    # Runs the float64 references only: each case's configuration must reach the branch it
    # is there for, or the comparison above proves less than it says.
    def run(case):
        reference = _reference(CASES[case][1])
        cap, capped = CASES[case][1].get("cap"), False
        for grads in harness.random_gradients(25, seed=1):
            reference.step(grads)
            capped |= cap is not None and cap in reference.trust
        return reference, capped

    reference, _ = run("defaults_clip")
    clipped = {c for _, _, c in reference.branches}
    assert clipped == {True, False}, "lr 0.02 must clip some layer steps and not others"
    for case in ("max_trust_ratio_clip", "max_trust_ratio_scale_mode"):
        assert run(case)[1], f"{case}: the cap never binds"
    reference, _ = run("max_trust_ratio_clip")
    assert not any(c for _, _, c in reference.branches), "cap 0.015 < lr: never clipped"


def test_larc_schedule_crosses_both_clip_branches():
    # The decaying schedule: every adapted layer with a nonzero weight takes both branches of
    # apex's min(local / lr, 1) over the 25 steps (adaptive early, lr itself late).
    reference = _reference(CASES["decaying_schedule"][1])
    for grads in harness.random_gradients(25, seed=1):
        reference.step(grads)
    per_layer = {}
    for _, i, clipped in reference.branches:
        per_layer.setdefault(i, set()).add(clipped)
    assert set(per_layer) == set(range(len(PATHS)))
    for i, seen in per_layer.items():
        assert seen == {True, False}, f"{PATHS[i]} took only clipped={seen}"
    # And the optimizer follows it (a reference that did not clip would be > 1e-3 away).
    optimizer = tf_lamb.LARC(**CASES["decaying_schedule"][0])
    harness.run_and_compare(optimizer, _reference(CASES["decaying_schedule"][1]), WEIGHTS, PATHS)


@pytest.mark.parametrize(
    "lr, clip, expected",
    [
        # w = [3, 4] (||w|| = 5), g = [0.6, 0.8] (||g|| = 1), wd 0.1, eta 0.02, eps 0:
        # local = 0.02 * 5 / (1 + 0.1 * 5) = 1/15; g + wd w = [0.9, 1.2]; buf = the step's d.
        # lr 0.1, clip: local / lr = 2/3 < 1, d = (2/3) [0.9, 1.2] = [0.6, 0.8], w - 0.1 d.
        (0.1, True, [3.0 - 0.06, 4.0 - 0.08]),
        # lr 0.05, clip: local / lr = 4/3, clipped to 1: d = [0.9, 1.2], w - 0.05 d.
        (0.05, True, [3.0 - 0.045, 4.0 - 0.06]),
        # lr 0.1, scale mode: d = (1/15) [0.9, 1.2] = [0.06, 0.08], w - 0.1 d.
        (0.1, False, [3.0 - 0.006, 4.0 - 0.008]),
    ],
    ids=["clip_adaptive", "clip_clipped", "scale"],
)
def test_larc_first_step_by_hand(lr, clip, expected):
    w = harness.make_variable("w", np.array([3.0, 4.0]))
    optimizer = tf_lamb.LARC(learning_rate=lr, weight_decay=0.1, clip=clip, epsilon=0.0)
    optimizer.apply_gradients([(keras.ops.convert_to_tensor([0.6, 0.8]), w)])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(w), expected, rtol=1e-6)


def test_larc_second_step_carries_the_lr_free_buffer():
    # Momentum 0.9, lr 0.1 then 0.05 (a schedule): torch's buffer holds the rescaled
    # gradients without lr (classic LARS' holds lr * ...). Step 1 as in the first case above:
    # buf = [0.6, 0.8], w = [2.94, 3.92]. Step 2, g = [0.6, 0.8] again, lr 0.05: ||w|| = 4.9,
    # local = 0.02 * 4.9 / (1 + 0.49) = 0.098 / 1.49 > 0.05: clipped to 1; d = g + 0.1 w =
    # [0.894, 1.192]; buf = 0.9 [0.6, 0.8] + d = [1.434, 1.912]; w = w - 0.05 buf.
    w = harness.make_variable("w", np.array([3.0, 4.0]))
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([0], [0.1, 0.05])
    optimizer = tf_lamb.LARC(learning_rate=schedule, weight_decay=0.1, epsilon=0.0)
    g = keras.ops.convert_to_tensor([0.6, 0.8])
    optimizer.apply_gradients([(g, w)])
    optimizer.apply_gradients([(g, w)])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(w), [2.94 - 0.05 * 1.434, 3.92 - 0.05 * 1.912], rtol=1e-6
    )


def test_larc_momentum_slots_hold_torchs_buffer():
    # One `momentum` slot per variable, in build order, holding torch SGD's momentum_buffer
    # (the lr-free rescaled gradients) -- what a port of a PyTorch checkpoint would load.
    optimizer = tf_lamb.LARC(learning_rate=_decaying_schedule(), weight_decay=0.01)
    reference = _reference(CASES["decaying_schedule"][1])
    harness.run_and_compare(optimizer, reference, WEIGHTS, PATHS, steps=10)
    slots = [v for v in optimizer.variables if "momentum" in v.name]
    assert len(slots) == len(PATHS)
    for slot, buf, path in zip(slots, reference.buf, PATHS):
        assert tuple(slot.shape) == buf.shape
        # Tolerance: the buffer is ~lr-free, O(1); float32 rounding over 10 steps.
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(slot), buf, rtol=harness.RTOL, atol=harness.ATOL,
            err_msg=f"momentum slot of {path}",
        )


@pytest.mark.parametrize("eta", [5e-3, 0.02, 10.0])
def test_larc_clip_never_steps_faster_than_lr(eta):
    # Momentum 0: each step is w - lr * local * (g + wd w), so the effective ratio is the
    # projection of the step on g + wd w. Clip: local <= 1 always (eta 10 puts the unclipped
    # ratio far above lr: exactly 1 then), and equals min(local / lr, 1) of the reference.
    # Scale mode with eta 10 does step faster than lr, so the check can fail (one step only:
    # such steps throw the weights far, and the next ratios are no longer read precisely).
    # Tolerance 2e-3: a step of ~5e-4 on O(1) float32 weights is read to ~1e-4 relative.
    lr, wd = 0.1, 0.01
    for clip in (True, False):
        variables = [harness.make_variable(f"{clip}/{p}", w) for p, w in zip(PATHS, WEIGHTS)]
        optimizer = tf_lamb.LARC(learning_rate=lr, momentum=0.0, weight_decay=wd,
                                 trust_coefficient=eta, clip=clip)
        reference = LARCReference(WEIGHTS, lr, momentum=0.0, eta=eta, clip=clip, wd=wd)
        fastest = 0.0
        for grads in harness.random_gradients(3 if clip else 1, seed=2):
            before = [keras.ops.convert_to_numpy(v).astype(np.float64) for v in variables]
            optimizer.apply_gradients(
                zip([keras.ops.convert_to_tensor(g, "float32") for g in grads], variables)
            )
            reference.step(grads)
            for v, w, g, expected in zip(variables, before, grads, reference.local):
                d = g + wd * w
                moved = w - keras.ops.convert_to_numpy(v).astype(np.float64)
                effective = np.sum(moved * d) / (lr * np.sum(d * d))
                np.testing.assert_allclose(effective, expected, rtol=2e-3)
                fastest = max(fastest, effective)
        if clip:
            assert fastest <= 1.0 + 2e-3
        elif eta == 10.0:
            assert fastest > 10.0  # Scale mode: lr * eta ||w|| / ||g||, far above lr.


@pytest.mark.parametrize("nesterov", [False, True])
def test_larc_scale_mode_is_classic_lars_at_a_constant_learning_rate(nesterov):
    # LARC scale:  buf = mu buf + r d;        w -= lr * buf        (nesterov: lr (r d + mu buf))
    # classic LARS: v = mu v + lr r d;        w -= v               (nesterov: lr r d + mu v)
    # with r = eta ||w|| / (||g|| + wd ||w|| + eps) in both: v = lr * buf while lr is constant.
    lr, eta, eps, wd = 2.0, 1e-3, 1e-3, 0.02
    common = {"momentum": 0.9, "nesterov": nesterov, "weight_decay": wd}
    ref_common = {"momentum": 0.9, "nesterov": nesterov, "wd": wd, "eta": eta, "eps": eps}

    # The claim, in float64: equal to rounding at a constant lr ...
    larc = LARCReference(WEIGHTS, lr, clip=False, **ref_common)
    lars = LARSReference(WEIGHTS, lr, form="classic", **ref_common)
    for grads in harness.random_gradients(25, seed=1):
        larc.step(grads)
        lars.step(grads)
        for a, b in zip(larc.w, lars.w):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
    # ... and not under a schedule (LARS' buffer keeps the old lr), so the check has teeth.
    larc = LARCReference(WEIGHTS, _decaying_lr, clip=False, **ref_common)
    lars = LARSReference(WEIGHTS, _decaying_lr, form="classic", **ref_common)
    for grads in harness.random_gradients(25, seed=1):
        larc.step(grads)
        lars.step(grads)
    assert max(np.max(np.abs(a - b)) for a, b in zip(larc.w, lars.w)) > 1e-3

    # The optimizers: the same within float32 rounding (harness tolerance), every step.
    ours = [harness.make_variable(f"larc/{p}", w) for p, w in zip(PATHS, WEIGHTS)]
    theirs = [harness.make_variable(f"lars/{p}", w) for p, w in zip(PATHS, WEIGHTS)]
    opt_larc = tf_lamb.LARC(lr, clip=False, trust_coefficient=eta, epsilon=eps, **common)
    opt_lars = tf_lamb.LARS(lr, form="classic", trust_coefficient=eta, epsilon=eps, **common)
    for k, grads in enumerate(harness.random_gradients(25, seed=1)):
        grads = [keras.ops.convert_to_tensor(g, "float32") for g in grads]
        opt_larc.apply_gradients(zip(grads, ours))
        opt_lars.apply_gradients(zip(grads, theirs))
        for a, b, p in zip(ours, theirs, PATHS):
            np.testing.assert_allclose(
                keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b),
                rtol=harness.RTOL, atol=harness.ATOL, err_msg=f"{p} at step {k + 1}",
            )


def test_larc_signature_is_the_planned_one():
    # The layer-wise arguments are named in the signature (as LARS names them), not hidden in
    # **kwargs, so help(), IDEs and test_get_config_round_trips_every_argument see them.
    expected = [
        ("learning_rate", 0.001), ("momentum", 0.9), ("weight_decay", 0.0),
        ("trust_coefficient", 0.02), ("clip", True), ("epsilon", 1e-8), ("nesterov", False),
        ("exclude_from_weight_decay", None), ("exclude_from_layer_adaptation", None),
        ("weight_norm_bounds", (0.0, None)), ("max_trust_ratio", None), ("name", "larc"),
    ]
    parameters = inspect.signature(tf_lamb.LARC.__init__).parameters
    named = [(k, p.default) for k, p in parameters.items() if k not in ("self", "kwargs")]
    assert named == expected


def test_larc_defaults_are_apexs():
    config = tf_lamb.LARC().get_config()
    assert config["learning_rate"] == pytest.approx(0.001, rel=1e-7)
    expected = {"momentum": 0.9, "weight_decay": 0.0, "trust_coefficient": 0.02, "clip": True,
                "epsilon": 1e-8, "nesterov": False, "name": "larc"}
    assert {k: config[k] for k in expected} == expected


def test_larc_get_config_round_trips_every_argument():
    kwargs = dict(
        learning_rate=0.03,
        momentum=0.8,
        weight_decay=1e-4,
        trust_coefficient=0.01,
        clip=False,
        epsilon=1e-6,
        nesterov=True,
        exclude_from_weight_decay=["bias", "layer_norm"],
        exclude_from_layer_adaptation=["scale"],
        weight_norm_bounds=(0.5, 4.0),
        max_trust_ratio=5.0,
        name="larc_full",
    )
    optimizer = tf_lamb.LARC(**kwargs)
    config = optimizer.get_config()
    arguments = set(inspect.signature(tf_lamb.LARC.__init__).parameters) - {"self", "kwargs"}
    assert arguments <= set(config), arguments - set(config)
    for key, value in kwargs.items():
        expected = list(value) if isinstance(value, tuple) else value
        if isinstance(value, float):  # The learning rate is held in float32.
            expected = pytest.approx(value, rel=1e-7)
        assert config[key] == expected, key
    rebuilt = tf_lamb.LARC.from_config(json.loads(json.dumps(config)))
    assert type(rebuilt) is tf_lamb.LARC and rebuilt.get_config() == config
    again = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(again) is tf_lamb.LARC and again.get_config() == config

    # The rebuilt optimizer steps as the original does (same float32 operations).
    a = [harness.make_variable(f"a/{p}", w) for p, w in zip(PATHS, WEIGHTS)]
    b = [harness.make_variable(f"b/{p}", w) for p, w in zip(PATHS, WEIGHTS)]
    for grads in harness.random_gradients(3, seed=3):
        grads = [keras.ops.convert_to_tensor(g, "float32") for g in grads]
        optimizer.apply_gradients(zip(grads, a))
        rebuilt.apply_gradients(zip(grads, b))
    for x, y in zip(a, b):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(x), keras.ops.convert_to_numpy(y),
                                   rtol=1e-6, atol=1e-7)


def test_larc_schedule_round_trips():
    optimizer = tf_lamb.LARC(learning_rate=_decaying_schedule())
    config = optimizer.get_config()
    rebuilt = tf_lamb.LARC.from_config(json.loads(json.dumps(config)))
    assert rebuilt.get_config() == config
    assert config["learning_rate"]["config"] == _decaying_schedule().get_config()


@pytest.mark.parametrize(
    "argument, value",
    [
        ("trust_coefficient", 0.0),
        ("trust_coefficient", -0.02),
        ("epsilon", -1e-9),
        ("momentum", -0.1),
        ("momentum", 1.0),
        ("momentum", 1.5),
        ("clip", "True"),
        ("clip", 1),
        ("clip", None),
    ],
)
def test_larc_rejects_out_of_range_arguments(argument, value):
    with pytest.raises(ValueError, match=argument):
        tf_lamb.LARC(**{argument: value})


def test_larc_accepts_the_closed_ends_of_its_ranges():
    optimizer = tf_lamb.LARC(momentum=0.0, epsilon=0.0, clip=False, trust_coefficient=1e-9)
    assert optimizer.get_config()["momentum"] == 0.0


@pytest.mark.parametrize("clip", [True, False])
def test_larc_zero_gradient_layer_still_decays(clip):
    # tf_lamb's zero-norm rule: ||g|| = 0 gives ratio 1 (no clip) and wd * w is still added,
    # so with momentum 0: w - lr * wd * w = [3, 4] * (1 - 0.5 * 0.1).
    w = harness.make_variable("w", np.array([3.0, 4.0]))
    optimizer = tf_lamb.LARC(learning_rate=0.5, weight_decay=0.1, momentum=0.0, clip=clip)
    optimizer.apply_gradients([(keras.ops.zeros((2,)), w)])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(w), [3.0 * 0.95, 4.0 * 0.95], rtol=1e-6)


@pytest.mark.parametrize("clip", [True, False])
def test_larc_zero_weight_layer_matches_apex(clip):
    # ||w|| = 0 (a zero-initialized bias): apex leaves g as it is and tf_lamb uses ratio 1
    # with wd * w = 0 -- the same step, w = -lr * g, under both zero rules.
    w = harness.make_variable("bias", np.zeros(3))
    g = np.array([0.5, -1.0, 2.0])
    optimizer = tf_lamb.LARC(learning_rate=0.5, weight_decay=0.1, momentum=0.0, clip=clip)
    optimizer.apply_gradients([(keras.ops.convert_to_tensor(g, "float32"), w)])
    for rule in ("tf_lamb", "apex"):
        reference = LARCReference([np.zeros(3)], 0.5, momentum=0.0, clip=clip, wd=0.1,
                                  zero_rule=rule)
        reference.step([g])
        np.testing.assert_allclose(keras.ops.convert_to_numpy(w), reference.w[0], rtol=1e-6)


@pytest.mark.xfail(
    strict=True,
    reason="README: Differences from the peers: LARC on a layer whose gradient is all zeros "
    "(apex) -- apex adds no weight decay there; tf_lamb uses ratio 1 and still decays",
)
@pytest.mark.parametrize("clip", [True, False])
def test_larc_zero_gradient_layer_as_apex(clip):
    # apex's LARC.step skips a parameter whose grad norm is 0 (no decay, no ratio) and has set
    # SGD's own weight_decay to 0 for the step: with momentum 0 the weights do not move.
    w = harness.make_variable("w", np.array([3.0, 4.0]))
    optimizer = tf_lamb.LARC(learning_rate=0.5, weight_decay=0.1, momentum=0.0, clip=clip)
    optimizer.apply_gradients([(keras.ops.zeros((2,)), w)])
    reference = LARCReference([np.array([3.0, 4.0])], 0.5, momentum=0.0, clip=clip, wd=0.1,
                              zero_rule="apex")
    reference.step([np.zeros(2)])
    np.testing.assert_allclose(reference.w[0], [3.0, 4.0])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(w), reference.w[0], rtol=1e-6)
