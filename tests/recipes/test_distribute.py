"""Tests of the strategy helpers notebooks use (recipes/common/distribute.py), and of the
strategy-fed input that a TPU uses (recipes/common/training.py)."""

from recipes.common import distribute


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

    def make_dataset(batch, shards, index):
        assert (shards, index) == (1, 0)
        return tf.data.Dataset.range(100).batch(batch)

    feed = training.DataFeed(tf.distribute.get_strategy(), make_dataset, 2, save_iterator=False)
    feed.on_tpu = True
    feed.skip_passes(3)
    assert next(feed.iterator).numpy().tolist() == [6, 7]
    assert feed.trackable() == {}
