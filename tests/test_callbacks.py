"""tf_lamb.callbacks.TrustRatioMonitor: TensorBoard summaries and warnings."""

import glob
import warnings

import keras
import numpy as np
import pytest

import tf_lamb
from tf_lamb.callbacks import TrustRatioMonitor, find_suspect_layers


def _fit(optimizer, callbacks, x_scale=1.0, epochs=2):
    rng = np.random.default_rng(0)
    x = (x_scale * rng.normal(size=(64, 4))).astype("float32")
    y = rng.normal(size=(64, 1)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(1)])
    model.compile(optimizer, "mse")
    model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, callbacks=callbacks)
    return model


def test_find_suspect_layers_flags_zero_nan_and_capped_ratios_of_adapted_layers_only():
    statistics = {
        "path": np.array(["a", "b", "c", "d", "e"]),
        "adapts": np.array([True, True, True, True, False]),
        "trust_ratio": np.array([[0.5], [0.0], [np.nan], [10.0], [0.0]]),
    }
    assert find_suspect_layers(statistics, max_trust_ratio=10.0) == {
        "zero": ["b"], "not_finite": ["c"], "at_cap": ["d"]
    }
    assert find_suspect_layers(statistics)["at_cap"] == []


def test_monitor_warns_once_per_layer_about_a_capped_ratio():
    # A cap far below any ratio pins every adapted layer at it; biases (excluded) are not flagged.
    optimizer = tf_lamb.LAMB(
        learning_rate=0.01, max_trust_ratio=1e-4, exclude_from_weight_decay=["bias"]
    )
    with pytest.warns(RuntimeWarning, match="at max_trust_ratio") as caught:
        _fit(optimizer, [TrustRatioMonitor(every_n_steps=2)])
    messages = [str(w.message) for w in caught if "max_trust_ratio" in str(w.message)]
    assert len(messages) == 1 and "kernel" in messages[0] and "bias" not in messages[0]


def test_monitor_warns_when_a_nan_reaches_the_norms():
    monitor = TrustRatioMonitor(every_n_steps=1)
    optimizer = tf_lamb.LAMB(learning_rate=0.01)
    variables = [keras.Variable(np.ones((3, 2), "float32"), name="kernel")]
    optimizer.apply([keras.ops.convert_to_tensor(np.full((3, 2), np.nan, "float32"))], variables)
    with pytest.warns(RuntimeWarning, match="NaN or infinite norm"):
        suspects = monitor.record(optimizer, step=1)
    assert suspects["not_finite"] == [optimizer.layer_statistics()["path"][0]]


def test_monitor_is_silent_on_a_healthy_run():
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        _fit(tf_lamb.LAMB(learning_rate=0.01), [TrustRatioMonitor(every_n_steps=1)])


def test_monitor_writes_trust_ratio_histograms_to_tensorboard(tmp_path):
    tf = pytest.importorskip("tensorflow")
    _fit(tf_lamb.LARS(learning_rate=0.1), [TrustRatioMonitor(str(tmp_path), every_n_steps=4)])
    tags, steps = set(), set()
    for path in glob.glob(str(tmp_path / "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tags.add(value.tag)
                steps.add(event.step)
    assert {"trust_ratio", "weight_norm", "update_norm", "trust_ratio/median"} <= tags
    assert steps == {4, 8}  # 2 epochs x 4 batches, every 4 steps


def test_monitor_rejects_bad_arguments_and_other_optimizers():
    with pytest.raises(ValueError, match="every_n_steps"):
        TrustRatioMonitor(every_n_steps=0)
    with pytest.raises(ValueError, match="tf_lamb optimizer"):
        TrustRatioMonitor().record(keras.optimizers.Adam(), step=1)
