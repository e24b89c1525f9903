"""Tests of the strategy helpers notebooks use (recipes/common/distribute.py), of the
strategy-fed input that a TPU uses (recipes/common/training.py), and of the run log a resumed
run appends to (recipes/common/driver.py)."""

import json
import sys

import pytest

from recipes.common import distribute, driver
from tf_lamb.callbacks import SummariesNotAvailableError


def test_a_tpu_vm_without_tensorflow_tpu_runs_the_recipes_on_jax(tmp_path, monkeypatch):
    from recipes.common import tpu_runtime

    device = tmp_path / "accel0"
    missing = (str(tmp_path / "none"),)
    installed = {"jax", "libtpu"}
    monkeypatch.setattr(tpu_runtime.importlib.util, "find_spec",
                        lambda name: object() if name in installed else None)
    monkeypatch.setattr(tpu_runtime, "_installed", lambda name: name in installed)
    assert tpu_runtime.keras_backend(missing) == "tensorflow"  # no TPU VM: GPUs, CPUs
    device.write_text("")
    assert tpu_runtime.keras_backend((str(device),)) == "jax"
    installed.add("tensorflow-tpu")  # TensorFlow can drive this TPU: the TPUStrategy path
    assert tpu_runtime.keras_backend((str(device),)) == "tensorflow"
    installed.clear()  # neither can: TensorFlow, which finds no TPU and says so
    assert tpu_runtime.keras_backend((str(device),)) == "tensorflow"


def test_find_tpu_reads_colab_tpu_vm_devices_and_tpu_name(tmp_path):
    device = tmp_path / "accel0"
    missing = (str(tmp_path / "none"),)
    assert distribute.find_tpu({"COLAB_TPU_ADDR": "10.0.0.2:8470"}, missing) == (
        "grpc://10.0.0.2:8470")
    assert distribute.find_tpu({}, missing) is None
    assert distribute.find_tpu({"TPU_NAME": "my-pod"}, missing) == "my-pod"
    device.write_text("")
    assert distribute.find_tpu({"TPU_NAME": "my-pod"}, (str(device),)) == "local"


def test_the_strategy_fed_pipeline_skips_one_element_per_replica_and_pass():
    # The TPU branch of DataFeed (the strategy's distributed dataset), run under the default
    # strategy: resuming after 3 passes skips 3 per-replica batches of its one pipeline.
    import tensorflow as tf

    from recipes.common import training

    def make_dataset(batch, shards, index, skip):
        assert (shards, index) == (1, 0)
        return tf.data.Dataset.range(100).skip(skip).batch(batch)

    feed = training.DataFeed(tf.distribute.get_strategy(), make_dataset, 2, save_iterator=False)
    feed.on_tpu = True
    feed.skip_passes(3)
    assert next(feed.iterator).numpy().tolist() == [6, 7]
    assert feed.trackable() == {}


TWO_REPLICA_SKIP = r"""
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from recipes.common import training

def make_dataset(batch, shards, index, skip):
    return tf.data.Dataset.range(100).skip(skip).batch(batch)

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
feed = training.DataFeed(strategy, make_dataset, 2, save_iterator=False)
feed.on_tpu = True
feed.skip_passes(3)
print("RESULT", [t.numpy().tolist() for t in strategy.experimental_local_results(next(feed.iterator))])
"""


def test_the_strategy_fed_pipeline_skips_a_batch_per_replica_and_pass_on_two_replicas():
    # One input pipeline feeding two replicas: 3 passes consumed 3 x 2 batches of 2.
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=root)
    proc = subprocess.run([sys.executable, "-c", TWO_REPLICA_SKIP], env=env, capture_output=True,
                          text=True, timeout=300, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split("RESULT")[-1].strip() == "[[12, 13], [14, 15]]"


SPLIT_STEPS = r"""
import json
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from recipes.common import batching, training

rng = np.random.default_rng(0)
x = rng.normal(size=(32, 3)).astype("float32")
t = rng.normal(size=(32, 2)).astype("float32")
w0 = rng.normal(size=(3, 2)).astype("float32")

def task(model, batch, training):
    inputs, targets = batch
    loss_sum = 0.5 * tf.reduce_sum(tf.square(model(inputs) - targets))
    return loss_sum, {"examples": tf.cast(tf.shape(inputs)[0], tf.float32)}

def make_dataset(batch, shards, index, skip):
    return tf.data.Dataset.from_tensor_slices((x, t)).skip(skip).batch(batch)

results = {}
for name, strategy in (("one device", tf.distribute.get_strategy()),
                       ("two replicas", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))):
    for max_per_replica in (16, 4, 2):
        with strategy.scope():
            model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, use_bias=False)])
            model.trainable_variables[0].assign(w0)
            # Plain SGD: the step is the gradient times the rate, so a gradient of the wrong
            # scale moves the weights by the wrong amount.
            optimizer = keras.optimizers.SGD(learning_rate=0.5)
            optimizer.build(model.trainable_variables)
        plan = batching.plan_batch(16, strategy.num_replicas_in_sync, max_per_replica)
        feed = training.DataFeed(strategy, make_dataset, plan.per_replica_batch_size)
        runner = training.StepRunner(strategy, model, optimizer, task, plan)
        sums = [runner.train_step(feed) for _ in range(2)]
        results[f"{name}, {plan.describe()}"] = {
            "weights": model.trainable_variables[0].numpy().tolist(),
            "loss": [float(s["loss"]) for s in sums],
            "examples": [float(s["examples"]) for s in sums],
        }
print("RESULT", json.dumps(results))
"""


def test_a_step_is_the_mean_gradient_of_the_global_batch_however_it_is_split():
    # One device in 1, 4 or 8 passes, two mirrored replicas in 1, 2 or 4 passes each: every
    # step must move the weights by the rate times the mean gradient over the global batch of 16
    # (the loss divided by the global batch, not by a replica's or a pass's share). Plain SGD
    # on a linear least-squares model, against the gradient in closed form.
    import os
    import subprocess
    import sys

    import numpy as np

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow", PYTHONPATH=root)
    proc = subprocess.run([sys.executable, "-c", SPLIT_STEPS], env=env, capture_output=True,
                          text=True, timeout=300, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.split("RESULT")[-1])
    rng = np.random.default_rng(0)
    x, t, w = rng.normal(size=(32, 3)), rng.normal(size=(32, 2)), rng.normal(size=(3, 2))
    x, t, w = (a.astype("float32").astype("float64") for a in (x, t, w))
    losses = []
    for step in range(2):
        xs, ts = x[16 * step : 16 * (step + 1)], t[16 * step : 16 * (step + 1)]
        error = xs @ w - ts
        losses.append(0.5 * np.sum(error**2))
        w = w - 0.5 * xs.T @ error / 16
    accumulation = {name.split(" x ")[-1] for name in results}
    assert len(results) == 6 and accumulation == {
        f"{n} accumulation step(s)" for n in (1, 2, 4, 8)}, list(results)
    for name, found in results.items():
        np.testing.assert_allclose(found["weights"], w, rtol=1e-5, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(found["loss"], losses, rtol=1e-5, err_msg=name)
        assert found["examples"] == [16.0, 16.0], name


def test_a_resumed_run_log_drops_the_lines_after_its_checkpoint(tmp_path):
    # A run killed after logging steps 3-5 (its checkpoint at 2) and in the middle of a line.
    lines = [json.dumps({"step": s, "loss": 1.0 / s}) + "\n" for s in (1, 2, 3, 4, 5)]
    path = tmp_path / "history.jsonl"
    path.write_text("".join(lines) + '{"step": 6, "lo')
    logger = driver.RunLog(str(tmp_path), enabled=True, step=2)
    logger.write(3, {"loss": 0.5})
    logger.close()
    assert path.read_text() == "".join(lines[:2]) + json.dumps({"step": 3, "loss": 0.5}) + "\n"
    # Nothing after the step: the file is left as it is (no rewrite).
    before = path.stat().st_mtime_ns, path.read_text()
    driver.RunLog(str(tmp_path), enabled=True, step=3).close()
    assert (path.stat().st_mtime_ns, path.read_text()) == before


def test_a_run_log_without_tensorboard_fails_before_opening_any_file(tmp_path, monkeypatch):
    # tensorflow-cpu without tensorboard: tf.summary would fail at the first scalar.
    monkeypatch.setitem(sys.modules, "tensorboard.summary.v2", None)
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(SummariesNotAvailableError, match="TensorBoard is not installed") as error:
        driver.RunLog(str(tmp_path), enabled=True)
    assert "pip install tf-lamb[recipes]" in str(error.value)
    assert list(tmp_path.iterdir()) == []  # no history.jsonl, no train/ or eval/ event file
    driver.RunLog(str(tmp_path), enabled=False).close()  # other hosts write nothing
