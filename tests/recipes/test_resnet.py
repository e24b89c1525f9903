"""Tests of the ResNet recipe (recipes/resnet) on real JPEG records made from Fashion-MNIST:
the converter (Fashion-MNIST and an image folder), the input pipeline (shapes, label offset,
normalization, augmentation), ResNet-50 steps under each optimizer, resumption after SIGKILL,
and the errors for bad records and flags.
"""

import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from recipes.common import optimizers, runtime, tfrecords
from recipes.resnet import configs, convert, input_pipeline, model as model_lib, records
from recipes.resnet import train as train_lib
from tf_lamb.callbacks import SummariesNotAvailableError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MEAN = np.array(input_pipeline.MEAN_RGB) * 255.0
STD = np.array(input_pipeline.STDDEV_RGB) * 255.0


def _records(path_glob):
    files = runtime.list_files(str(path_glob))
    return [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(files)]


def test_fashion_records_hold_the_images_as_jpeg_with_one_based_labels(fashion, record_dir):
    metadata = json.loads((record_dir / "metadata.json").read_text())
    assert metadata == {"source": "fashion_mnist", "num_classes": 10, "label_offset": 1,
                        "train_examples": 512, "validation_examples": 512}
    assert (record_dir / "labels.txt").read_text().splitlines()[0] == "T-shirt/top"
    assert sorted(p.name for p in record_dir.glob("train-*")) == [
        f"train-0000{i}-of-00004" for i in range(4)]
    # Shards are written round-robin: record i of the source is shard i % 4's (i // 4)-th.
    shard = _records(record_dir / "train-00001-of-00004")
    for j, example in enumerate(shard[:20]):
        features = example.features.feature
        i = 4 * j + 1
        assert features["image/class/label"].int64_list.value[0] == fashion.y_train[i] + 1
        assert features["image/format"].bytes_list.value[0] == b"JPEG"
        pixels = tf.io.decode_jpeg(features["image/encoded"].bytes_list.value[0]).numpy()
        assert pixels.shape == (28, 28, 1)
        # JPEG at quality 95: within a few grey levels of the source on average.
        source = np.round(fashion.x_train[i] * 255.0)
        assert np.mean(np.abs(pixels[..., 0] - source)) < 3.0


def test_eval_pipeline_normalizes_the_decoded_image_and_shifts_labels(record_dir):
    files = runtime.list_files(str(record_dir / "validation-*"))
    examples = input_pipeline.read_records(files, training=False)
    dataset = input_pipeline.make_dataset(examples, 50, image_size=28, training=False,
                                          num_classes=10, crop_padding=0)
    images, labels = next(iter(dataset))
    assert images.shape == (50, 28, 28, 3) and images.dtype == tf.float32
    assert labels.dtype == tf.int32
    jpeg, stored = next(iter(examples))
    assert int(labels[0]) == int(stored) - 1 and 0 <= int(tf.reduce_min(labels))
    # Grey decoded to RGB; with crop_padding 0 at the native size the crop and the bicubic
    # resize are the identity: what is left is (pixel - mean) / std per channel.
    grey = tf.io.decode_jpeg(jpeg, channels=1).numpy().astype(np.float64)
    expected = (grey - MEAN) / STD
    np.testing.assert_allclose(images[0].numpy(), expected, atol=1e-4)
    # The reference's 87.5% centre crop at 224 (crop_padding 32), as bfloat16 for a TPU.
    crop = input_pipeline.preprocess_for_eval(jpeg, 224, dtype=tf.bfloat16)
    assert crop.shape == (224, 224, 3) and crop.dtype == tf.bfloat16


def test_train_augmentation_is_seeded_varied_and_within_bounds(record_dir):
    files = runtime.list_files(str(record_dir / "train-*"))
    jpeg, _ = next(iter(input_pipeline.read_records(files, training=False)))
    seed = tf.constant([7, 3])
    a = input_pipeline.preprocess_for_train(jpeg, 32, seed).numpy()
    b = input_pipeline.preprocess_for_train(jpeg, 32, seed).numpy()
    np.testing.assert_array_equal(a, b)  # stateless: same seed, same crop and flip
    outputs = [input_pipeline.preprocess_for_train(jpeg, 32, tf.constant([7, s])).numpy()
               for s in range(40)]
    assert len({o.tobytes() for o in outputs}) == 40
    assert all(o.shape == (32, 32, 3) for o in outputs)
    # Bicubic resizing overshoots a little; the values stay near the normalized pixel range.
    low, high = (-MEAN / STD).min(), ((255.0 - MEAN) / STD).max()
    assert all(o.min() >= low - 1.0 and o.max() <= high + 1.0 for o in outputs)
    # Flips: some outputs are mirror images of a crop of the other orientation; check the
    # mechanism directly on the image with the same seeds.
    image = tf.reshape(tf.range(12, dtype=tf.float32), [2, 2, 3])
    flipped = [bool(np.any(tf.image.stateless_random_flip_left_right(
        image, tf.random.experimental.stateless_split(tf.constant([7, s]), 2)[1]).numpy()
        != image.numpy())) for s in range(40)]
    assert 8 <= sum(flipped) <= 32


def test_folder_converter_labels_sorted_classes_and_reencodes_png(fashion, tmp_path):
    source = tmp_path / "images"
    for split, count in (("train", 3), ("validation", 1)):
        for name, label in (("bag", 8), ("sandal", 5)):
            folder = source / split / name
            folder.mkdir(parents=True)
            images = fashion.x_train[fashion.y_train == label][:count]
            for k, x in enumerate(images):
                pixels = tf.constant(np.round(x * 255).astype(np.uint8)[..., None])
                encoded = tf.io.encode_png(pixels) if k % 2 else tf.io.encode_jpeg(pixels)
                (folder / f"{k}.{'png' if k % 2 else 'jpg'}").write_bytes(encoded.numpy())
    fv = flags.FlagValues()
    convert.define_flags(fv)
    fv(["prog", f"--source={source}", f"--output_dir={tmp_path / 'out'}", "--train_shards=1",
        "--validation_shards=1"])
    metadata = convert.convert(fv, log=lambda *_: None)
    assert (metadata["num_classes"], metadata["train_examples"],
            metadata["validation_examples"]) == (2, 6, 2)
    train = _records(tmp_path / "out" / "train-*")
    labels = [e.features.feature["image/class/label"].int64_list.value[0] for e in train]
    texts = [e.features.feature["image/class/text"].bytes_list.value[0] for e in train]
    assert labels == [1, 1, 1, 2, 2, 2] and texts[0] == b"bag" and texts[-1] == b"sandal"
    for example in train:  # every record holds a JPEG, PNGs re-encoded as RGB
        jpeg = example.features.feature["image/encoded"].bytes_list.value[0]
        assert jpeg[:2] == b"\xff\xd8" and tf.io.decode_jpeg(jpeg).shape[:2] == (28, 28)
    (source / "train" / "bag" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match=r"--source: .*broken.png is not a readable image"):
        convert.convert(fv, log=lambda *_: None)


def test_exclusions_are_exactly_resnet50s_batch_norm_and_bias_variables():
    model = model_lib.build("resnet50", 32, 10)
    assert model.count_params() == 23_608_202  # 23,587,712 + 2048 x 10 + 10
    patterns = [re.compile(p) for p in model_lib.EXCLUDE]
    for variable in model.trainable_variables:
        excluded = any(p.search(variable.path) for p in patterns)
        assert excluded == (variable.name in ("gamma", "beta", "bias")), variable.path
    small = model_lib.build("resnet20", 28, 10)
    assert sum(1 for v in small.trainable_variables if "_bn/" in v.path) == 2 * 21


def _flags(*args):
    fv = flags.FlagValues()
    train_lib.define_flags(fv)
    fv(["prog", *args])
    return fv


@pytest.mark.slow
@pytest.mark.parametrize("config", ["mlperf_lars_8k", "lamb_32k", "goyal_momentum_8k"])
def test_imagenet_configs_step_under_each_optimizer(record_dir, tmp_path, config):
    # ResNet-50 once, with one evaluation pass; the other optimizers on a ResNet-8 (faster).
    evaluate = config == "mlperf_lars_8k"
    model = "resnet50" if evaluate else "resnet8"
    fv = _flags(f"--config={config}", f"--train_files={record_dir}/train-*",
                f"--output_dir={tmp_path}", "--image_size=32", "--global_batch_size=8",
                "--train_steps=0", "--epochs=0.03125", "--boundaries_epochs=0.015625",
                "--warmup_epochs=0", "--base_warmup_epochs=0", "--eval_every=0", "--log_every=1",
                "--noprogress", f"--model={model}",
                *([f"--eval_files={record_dir}/validation-00000-of-00002"] if evaluate else []))
    result = train_lib.run(fv, log=lambda *_: None)
    assert result["step"] == 2
    lines = [json.loads(x) for x in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == ([1, 2, 2] if evaluate else [1, 2])
    assert all(np.isfinite(r["loss"]) for r in lines[:2])
    if evaluate:
        assert 0 <= lines[-1]["eval_accuracy"] <= 1  # one pass over 256 validation records
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["num_classes"] == 10 and saved["train_examples"] == 512  # from metadata.json
    assert saved["model"] == model and saved["label_offset"] == 1
    assert saved["optimizer"] == {"mlperf_lars_8k": "lars", "lamb_32k": "lamb",
                                  "goyal_momentum_8k": "momentum"}[config]


def test_without_tensorboard_the_run_stops_before_reading_or_writing(tmp_path, monkeypatch):
    # tensorflow-cpu without tensorboard: tf.summary would fail at the first scalar.
    monkeypatch.setitem(sys.modules, "tensorboard.summary.v2", None)
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    output_dir = tmp_path / "run"
    fv = _flags("--config=fashion_lamb_2k", f"--train_files={tmp_path}/records/train-*",
                f"--output_dir={output_dir}")
    with pytest.raises(SummariesNotAvailableError, match="TensorBoard is not installed") as error:
        train_lib.run(fv, log=lambda *_: None)
    assert "pip install tf-lamb[recipes]" in str(error.value)
    assert not output_dir.exists()


def _command(record_dir, output_dir, *args):
    return [sys.executable, "-m", "recipes.resnet.train", "--config=fashion_lamb_2k",
            f"--train_files={record_dir}/train-*", f"--output_dir={output_dir}",
            "--global_batch_size=32", "--train_steps=6", "--log_every=1", "--checkpoint_every=2",
            "--noprogress", "--shuffle_buffer=64", *args]


def _run(record_dir, output_dir, *args, check=True):
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(_command(record_dir, output_dir, *args), env=env, capture_output=True,
                          text=True, timeout=600, cwd=ROOT)
    if check:
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def _weights(output_dir):
    model = model_lib.build("resnet8", 28, 10)
    status = tf.train.Checkpoint(model=model).restore(tf.train.latest_checkpoint(str(output_dir)))
    status.expect_partial().assert_existing_objects_matched()
    return {v.path: v.numpy() for v in model.variables}


@pytest.mark.slow
def test_resume_after_sigkill_equals_the_uninterrupted_run(record_dir, tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    _run(record_dir, whole)
    proc = _run(record_dir, killed, "--kill_at_step=3", check=False)
    assert proc.returncode == -9
    assert tf.train.latest_checkpoint(str(killed)).endswith("ckpt-2")
    out = _run(record_dir, killed)
    assert "resumed from" in out.stdout and "ckpt-2" in out.stdout
    # Same shuffle position, same crops and flips (seeded by the saved example count), same
    # batch-norm statistics: the same weights up to float summation order.
    a, b = _weights(whole), _weights(killed)
    assert a.keys() == b.keys()
    worst = max(float(np.max(np.abs(a[k] - b[k]))) for k in a)
    assert worst <= 1e-6, worst


@pytest.mark.slow
def test_bad_records_and_labels_stop_with_the_file_named(record_dir, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    good = _records(record_dir / "train-00000-of-00004")
    broken = tf.train.Example()
    broken.CopyFrom(good[5])
    broken.features.feature["image/encoded"].bytes_list.value[0] = b"\xff\xd8 not a jpeg"
    serialized = [e.SerializeToString() for e in good[:5]] + [broken.SerializeToString()]
    tfrecords.write_shards(serialized * 4, str(bad / "train"), 1)
    (bad / "metadata.json").write_text((record_dir / "metadata.json").read_text())

    def run(files, *args):
        fv = _flags("--config=fashion_lamb_2k", f"--train_files={files}",
                    f"--output_dir={tmp_path / 'out'}", "--global_batch_size=32",
                    "--train_steps=2", "--noprogress", "--shuffle_buffer=64", *args)
        return train_lib.run(fv, log=lambda *_: None)

    with pytest.raises(ValueError, match=r"--train_files: bad record in .*train-00000-of-00001"):
        run(bad / "train-*")
    with pytest.raises(ValueError, match=r"bad record in .*label >= --num_classes"):
        run(record_dir / "train-*", "--num_classes=5")
    with pytest.raises(FileNotFoundError, match="--train_files: no file matches '/nonexistent/"):
        run("/nonexistent/*")


def test_configs_mirror_the_references_and_check_their_fields():
    lars = configs.CONFIGS["mlperf_lars_8k"]
    assert (lars.global_batch_size, lars.peak_learning_rate, lars.total_steps) == (8192, 17.0, 6875)
    assert (lars.weight_decay, lars.trust_coefficient, lars.decay_power) == (2e-4, 0.001, 2.0)
    goyal = configs.CONFIGS["goyal_momentum_8k"]
    assert goyal.peak_learning_rate == pytest.approx(3.2)  # 0.1 x 8192 / 256
    assert goyal.warmup_steps == 5 * 156
    lamb = configs.CONFIGS["lamb_16k"]
    assert lamb.peak_learning_rate == pytest.approx(0.04 * 0.5 ** 0.5)
    assert lamb.warmup_steps == round(10 * 78)  # LEGW: 20 x 16K/32K epochs
    schedule = configs.CONFIGS["fashion_momentum_2k"].schedule_fn()
    assert float(schedule(16)) == pytest.approx(0.8) and float(schedule(97)) == pytest.approx(0.08)
    with pytest.raises(ValueError, match="--optimizer must be one of momentum, lars, lamb"):
        configs.TrainConfig(optimizer="adam")
    with pytest.raises(ValueError, match="lower --warmup_epochs"):
        configs.TrainConfig(epochs=1, warmup_epochs=2)
    fv = _flags("--config=lamb_32k", "--global_batch_size=8192")
    assert train_lib.resolve_config(fv).warmup_steps == round(5 * (1_281_167 // 8192))
    with pytest.raises(ValueError, match="--model must be one of"):
        model_lib.build("resnet18", 32, 10)


def test_records_parse_defaults_a_missing_label_to_minus_one():
    example = tf.train.Example()
    example.features.feature[records.ENCODED].bytes_list.value.append(b"x")
    jpeg, label = records.parse(example.SerializeToString())
    assert jpeg.numpy() == b"x" and int(label) == -1


def test_bfloat16_precision_and_xla_train_with_float32_variables(record_dir, tmp_path):
    # What a TPU gets by default (--precision=auto) and compiles (--jit_compile); bfloat16
    # matmuls also run on a CPU.
    fv = _flags("--jit_compile", "--config=fashion_lars_2k",
                f"--train_files={record_dir}/train-*",
                f"--output_dir={tmp_path}", "--global_batch_size=32", "--train_steps=2",
                "--noprogress", "--precision=mixed_bfloat16", "--log_every=1", "--warmup_epochs=0")
    try:
        result = train_lib.run(fv, log=lambda *_: None)
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert result["step"] == 2 and np.isfinite(result["train"]["loss"])
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["precision"] == "mixed_bfloat16" and saved["jit_compile"] is True
    model = model_lib.build("resnet8", 28, 10)
    assert all(v.dtype == "float32" for v in model.variables)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in optimizers.OPTIMIZERS
                                  if n not in ("momentum", "lars", "lamb")])
def test_an_optimizer_outside_the_references_trains(record_dir, tmp_path, name):
    # Every optimizer of the recipes' factory reaches this recipe by its name.
    fv = _flags("--config=fashion_lamb_2k", f"--train_files={record_dir}/train-*",
                f"--output_dir={tmp_path}", "--global_batch_size=32", "--train_steps=2",
                "--noprogress", "--log_every=1", f"--optimizer={name}")
    result = train_lib.run(fv, log=lambda *_: None)
    assert result["step"] == 2 and np.isfinite(result["train"]["loss"])
    assert json.loads((tmp_path / "config.json").read_text())["optimizer"] == name
