"""tf_lamb.callbacks.TrustRatioMonitor: TensorBoard summaries and warnings."""

import glob
import sys
import warnings

import keras
import numpy as np
import pytest

import tf_lamb
from tf_lamb.callbacks import SummariesNotAvailableError, TrustRatioMonitor, find_suspect_layers


def _uninstall(monkeypatch, *modules):
    """Makes ``import`` of each of ``modules`` fail as when it is not installed (a None entry in
    ``sys.modules`` raises ModuleNotFoundError), until the test ends."""
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


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


def _use_writer(monkeypatch, writer):
    """Leaves only ``writer`` ("tf.summary" or "tensorboardX") installed (skips where it is
    not)."""
    if writer == "tf.summary":
        pytest.importorskip("tensorflow")
        pytest.importorskip("tensorboard")
        _uninstall(monkeypatch, "tensorboardX")
    else:  # an install without TensorFlow
        pytest.importorskip("tensorboardX")
        _uninstall(monkeypatch, "tensorflow")


def _events(log_dir):
    """``{tag: [(step, value as a NumPy array)]}`` of the event files in ``log_dir``, as
    TensorBoard reads them (``tf.summary``'s and tensorboardX's alike: a histogram as rows of
    (left edge, right edge, count))."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util.tensor_util import make_ndarray

    found = {}
    for path in sorted(glob.glob(str(log_dir / "events.out.tfevents.*"))):
        for event in EventFileLoader(path).Load():
            for value in event.summary.value:
                found.setdefault(value.tag, []).append((event.step, make_ndarray(value.tensor)))
    return found


@pytest.mark.parametrize("writer", ["tf.summary", "tensorboardX"])
def test_monitor_writes_the_values_of_layer_statistics(tmp_path, monkeypatch, writer):
    # Each written value against the optimizer's own statistics: histograms over the adapted
    # layers only (the biases, excluded, read 0 and 1 and must not be counted), scalars of their
    # ratios, and the suspect counts.
    optimizer = tf_lamb.LAMB(learning_rate=0.01, weight_decay=0.01, max_trust_ratio=1.0,
                             exclude_from_layer_adaptation=["bias"])
    rng = np.random.default_rng(3)
    shapes = [(5, 4), (4,), (4, 3), (3,), (3, 2)]
    scales = [0.3, 1.0, 0.01, 1.0, 100.0]  # ratios of different sizes, one of them capped at 1
    variables = [keras.Variable((s * rng.normal(size=shape)).astype("float32"),
                                name="bias" if len(shape) == 1 else f"kernel_{i}")
                 for i, (shape, s) in enumerate(zip(shapes, scales))]
    for _ in range(2):
        optimizer.apply([keras.ops.convert_to_tensor(rng.normal(size=v.shape).astype("float32"))
                         for v in variables], variables)
    _use_writer(monkeypatch, writer)
    monitor = TrustRatioMonitor(str(tmp_path), warn=False)
    suspects = monitor.record(optimizer, step=7)
    assert (monitor._writer._tf is not None) == (writer == "tf.summary")
    monitor.on_train_end()
    statistics = optimizer.layer_statistics()
    adapted = statistics["adapts"]
    assert adapted.tolist() == [True, False, True, False, True]
    written = _events(tmp_path)
    assert {step for values in written.values() for step, _ in values} == {7}
    assert all(len(values) == 1 for values in written.values())
    for tag in ("trust_ratio", "weight_norm", "update_norm"):
        expected = np.asarray(statistics[tag][adapted], np.float64).ravel()
        buckets = written[tag][0][1]  # rows (left edge, right edge, count)
        assert buckets.ndim == 2 and buckets.shape[1] == 3, tag
        assert buckets[:, 2].sum() == expected.size, tag
        np.testing.assert_allclose(buckets[0, 0], expected.min(), rtol=1e-6, err_msg=tag)
        np.testing.assert_allclose(buckets[-1, 1], expected.max(), rtol=1e-6, err_msg=tag)
    ratios = np.asarray(statistics["trust_ratio"][adapted], np.float64).ravel()
    assert len(set(ratios.round(6))) == 3 and ratios.max() == 1.0  # three distinct, one capped
    for name, value in (("min", ratios.min()), ("median", np.median(ratios)),
                        ("max", ratios.max())):
        np.testing.assert_allclose(written[f"trust_ratio/{name}"][0][1], value, rtol=1e-6)
    assert suspects["at_cap"] == ["kernel_4"]
    for kind, paths in suspects.items():
        assert written[f"suspect_layers/{kind}"][0][1] == len(paths), kind


def test_monitor_without_tensorboard_fails_when_built_and_writes_no_file(tmp_path, monkeypatch):
    tf = pytest.importorskip("tensorflow")
    # What tf.summary checks at each write: the import of TensorBoard's summary ops. Without
    # them TensorFlow raises TBNotInstalledError, as in an install of tensorflow-cpu alone.
    _uninstall(monkeypatch, "tensorboard.summary.v2", "tensorboardX")
    with pytest.raises(Exception, match="TensorBoard is not installed"):
        tf.summary.scalar("x", 1.0, step=0)
    log_dir = tmp_path / "trust_ratios"
    with pytest.raises(SummariesNotAvailableError, match="TensorBoard is not installed") as error:
        TrustRatioMonitor(str(log_dir))
    assert isinstance(error.value, ImportError)
    message = str(error.value)
    assert "pip install tensorflow tensorboard" in message and "tf-lamb[tf-cpu]" in message
    assert "log_dir=None" in message
    assert list(tmp_path.iterdir()) == []  # no folder, no event file


def test_monitor_without_tensorflow_names_what_to_install(tmp_path, monkeypatch):
    # A JAX or PyTorch install without TensorFlow.
    _uninstall(monkeypatch, "tensorflow", "tensorboardX")
    with pytest.raises(SummariesNotAvailableError, match="TensorFlow is not installed") as error:
        TrustRatioMonitor(str(tmp_path / "trust_ratios"), every_n_steps=5)
    assert "pip install tensorflow tensorboard" in str(error.value)
    assert "log_dir=None" in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_monitor_without_log_dir_needs_neither_tensorflow_nor_tensorboard(monkeypatch):
    # On any backend: warnings only.
    optimizer = tf_lamb.LAMB(learning_rate=0.01, max_trust_ratio=1e-4)
    variables = [keras.Variable(np.ones((3, 2), "float32"), name="kernel")]
    optimizer.apply([keras.ops.convert_to_tensor(np.ones((3, 2), "float32"))], variables)
    _uninstall(monkeypatch, "tensorflow", "tensorboard", "tensorboard.summary.v2", "tensorboardX")
    monitor = TrustRatioMonitor(every_n_steps=1)
    with pytest.warns(RuntimeWarning, match="at max_trust_ratio"):
        suspects = monitor.record(optimizer, step=1)
    assert suspects["at_cap"] == ["kernel"]
    monitor.on_train_end()


def test_monitor_rejects_bad_arguments_and_other_optimizers():
    with pytest.raises(ValueError, match="every_n_steps"):
        TrustRatioMonitor(every_n_steps=0)
    with pytest.raises(ValueError, match="tf_lamb optimizer"):
        TrustRatioMonitor().record(keras.optimizers.Adam(), step=1)


def test_tensorboardx_writers_of_one_folder_keep_their_own_files(tmp_path, monkeypatch):
    # tensorboardX names its file by the second and host: two writers opened in one second
    # (the run log's and the monitor's) would share one file, the second overwriting the first.
    # An empty histogram (no adapted layer), which tensorboardX refuses, is left out.
    pytest.importorskip("tensorboardX")
    _uninstall(monkeypatch, "tensorflow")
    from tf_lamb._summaries import EventWriter

    first, second = EventWriter(str(tmp_path)), EventWriter(str(tmp_path))
    first.write(3, {"loss": 2.5})
    second.write(3, {"trust_ratio/max": 1.0}, {"trust_ratio": [], "weight_norm": [1.0, 2.0]})
    first.close()
    second.close()
    written = _events(tmp_path)
    assert set(written) == {"loss", "trust_ratio/max", "weight_norm"}
    assert [(step, float(value)) for step, value in written["loss"]] == [(3, 2.5)]
    buckets = written["weight_norm"][0][1]
    assert buckets[:, 2].sum() == 2 and (buckets[0, 0], buckets[-1, 1]) == (1.0, 2.0)


@pytest.mark.parametrize("writer", ["tf.summary", "tensorboardX"])
def test_monitor_warns_and_writes_when_every_update_is_nan(tmp_path, monkeypatch, writer):
    # A diverged step: every update norm and trust ratio is NaN. The warning comes first, and
    # the writer takes what it can (tensorboardX refuses NaN: it gets the finite weight norms).
    optimizer = tf_lamb.LAMB(learning_rate=0.01)
    rng = np.random.default_rng(5)
    variables = [keras.Variable(rng.normal(size=(3, 2)).astype("float32"), name=f"kernel_{i}")
                 for i in range(2)]
    optimizer.apply([keras.ops.convert_to_tensor(np.full((3, 2), np.nan, "float32"))] * 2,
                    variables)
    _use_writer(monkeypatch, writer)
    monitor = TrustRatioMonitor(str(tmp_path))
    with pytest.warns(RuntimeWarning, match="NaN or infinite norm"):
        suspects = monitor.record(optimizer, step=1)
    monitor.on_train_end()
    assert len(suspects["not_finite"]) == 2
    written = _events(tmp_path)
    assert "weight_norm" in written and written["weight_norm"][0][1][:, 2].sum() == 2
