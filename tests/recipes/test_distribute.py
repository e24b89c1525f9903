"""Tests of the strategy helpers notebooks use (recipes/common/distribute.py), of the
strategy-fed input that a TPU uses (recipes/common/training.py), and of the run log a resumed
run appends to (recipes/common/driver.py)."""

import json

from recipes.common import distribute, driver


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
