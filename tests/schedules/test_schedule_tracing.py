"""The schedules inside compiled functions: one trace for every step, and values as eager."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from tf_lamb import schedules

from . import cases, numpy_reference as ref

# XLA may fuse and reorder float32 ops (e.g. pow as exp(p * log(x))), so it can differ from
# eager by a few float32 ulps (2**-24 ~ 6e-8 each); 1e-6 relative leaves room for ~15 of
# them. atol for values at or near 0.
RTOL, ATOL = 1e-6, 1e-9

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="tf.function / XLA tracing checks"
)


def test_xla_compiled_schedule_traces_once_and_matches_eager():
    for schedule in cases.every_kind():
        traces = []

        @tf.function(jit_compile=True)
        def learning_rate_at(step, schedule=schedule):
            traces.append(None)  # runs only while tracing
            return schedule(step)

        steps = cases.probe_steps(schedule)
        compiled = [learning_rate_at(tf.constant(s, tf.int64)).numpy() for s in steps]
        eager = ops.convert_to_numpy(schedule(np.asarray(steps, dtype="int64")))
        assert len(traces) == 1, f"{schedule.get_config()} traced {len(traces)} times"
        np.testing.assert_allclose(
            compiled, eager, rtol=RTOL, atol=ATOL, err_msg=str(schedule.get_config())
        )


def test_optimizer_applies_rate_of_zero_based_iteration_without_retracing():
    # SGD with a constant gradient of 1 moves w by -lr(iteration) each step, the first step
    # using lr(0). Run 40 updates in one compiled function: one trace.
    schedule = schedules.PolynomialDecayWithWarmup(0.5, 30, 10, power=2.0)
    optimizer = keras.optimizers.SGD(learning_rate=schedule)
    weight = keras.Variable(0.0, dtype="float32")
    optimizer.build([weight])
    traces = []

    @tf.function(jit_compile=True)
    def train_step():
        traces.append(None)
        optimizer.apply_gradients([(tf.ones(()), weight)])

    for _ in range(40):
        train_step()
    expected = -ref.curve(
        ref.polynomial_with_warmup,
        range(40),
        peak=0.5,
        total=30,
        warmup=10,
        power=2.0,
        end=0.0,
        from_warmup_end=False,
    ).sum()
    assert len(traces) == 1
    assert int(optimizer.iterations.numpy()) == 40
    np.testing.assert_allclose(weight.numpy(), expected, rtol=RTOL)
