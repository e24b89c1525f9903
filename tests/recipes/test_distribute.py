"""Tests of the strategy helpers notebooks use (recipes/common/distribute.py)."""

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
