"""Tests of the Fashion-MNIST batch-scaling study (recipes/batch_scaling)."""

import csv
import gzip
import json
import os
import sys

import numpy as np
import pytest
from absl import flags

from recipes.batch_scaling import main
from recipes.common import fashion_mnist as data
from recipes.common import models, report, study, study_flags
from recipes.common import runtime

DEBIAN_FILES_PRESENT = all(
    os.path.isfile(os.path.join(data.DEBIAN_DIR, stem + ".gz")) for stem in data.FILES.values()
)
# Under CI (TF_LAMB_REQUIRE_DATA=1) missing data fails the tests instead of skipping them.
REQUIRE_DATA = bool(os.environ.get("TF_LAMB_REQUIRE_DATA"))
needs_fashion_mnist = pytest.mark.skipif(
    not DEBIAN_FILES_PRESENT and not REQUIRE_DATA,
    reason=f"Fashion-MNIST not in {data.DEBIAN_DIR} (apt-get install dataset-fashion-mnist)",
)


@pytest.fixture(scope="module")
def fashion_mnist():
    if not DEBIAN_FILES_PRESENT and not REQUIRE_DATA:
        pytest.skip("Fashion-MNIST not installed")
    return data.load_fashion_mnist(allow_download=False)


def _write_idx(path, magic, shape, payload, compress=True):
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in shape)
    raw = header + payload
    with open(path, "wb") as f:
        f.write(gzip.compress(raw) if compress else raw)


# IDX reader -----------------------------------------------------------------------------------


@needs_fashion_mnist
def test_idx_reader_reads_the_real_files_with_their_shapes_and_label_range(fashion_mnist):
    images = data.read_idx(
        os.path.join(data.DEBIAN_DIR, "train-images-idx3-ubyte.gz"), data.IMAGES_MAGIC
    )
    labels = data.read_idx(
        os.path.join(data.DEBIAN_DIR, "t10k-labels-idx1-ubyte.gz"), data.LABELS_MAGIC
    )
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,)
    assert fashion_mnist.x_train.shape == (60000, 28, 28)
    assert fashion_mnist.x_test.shape == (10000, 28, 28)
    assert fashion_mnist.x_train.dtype == np.float32
    assert 0.0 <= fashion_mnist.x_train.min() and fashion_mnist.x_train.max() <= 1.0
    for y in (fashion_mnist.y_train, fashion_mnist.y_test):
        assert y.min() == 0 and y.max() == 9
    # Fashion-MNIST is balanced: 6000 training and 1000 test examples per class.
    assert np.all(np.bincount(fashion_mnist.y_train) == 6000)
    assert np.all(np.bincount(fashion_mnist.y_test) == 1000)


def test_idx_reader_round_trips_a_small_uncompressed_and_gzipped_file(tmp_path):
    payload = np.arange(24, dtype=np.uint8)
    for compress in (True, False):
        path = tmp_path / f"x{compress}"
        _write_idx(path, data.IMAGES_MAGIC, (2, 3, 4), payload.tobytes(), compress)
        np.testing.assert_array_equal(data.read_idx(str(path)), payload.reshape(2, 3, 4))


def test_truncated_gzip_file_raises_an_error_naming_the_file(tmp_path):
    good = tmp_path / "good.gz"
    _write_idx(good, data.LABELS_MAGIC, (1000,), bytes(1000))
    bad = tmp_path / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(good.read_bytes()[:-30])
    with pytest.raises(data.IDXFormatError, match=str(bad)):
        data.read_idx(str(bad))


def test_idx_file_shorter_than_its_header_says_raises_an_error_naming_the_file(tmp_path):
    path = tmp_path / "short-images.gz"
    _write_idx(path, data.IMAGES_MAGIC, (10, 28, 28), bytes(9 * 28 * 28))
    with pytest.raises(data.IDXFormatError, match="short-images.gz.*truncated"):
        data.read_idx(str(path))


def test_wrong_magic_number_raises_an_error_naming_the_file_and_the_magic(tmp_path):
    path = tmp_path / "labels.gz"
    _write_idx(path, data.LABELS_MAGIC, (3,), bytes(3))
    with pytest.raises(data.IDXFormatError, match="labels.gz.*2049.*expected 2051"):
        data.read_idx(str(path), expected_magic=data.IMAGES_MAGIC)


def test_corrupt_file_in_data_dir_is_reported_by_name(tmp_path):
    for key, stem in data.FILES.items():
        magic = data.IMAGES_MAGIC if key.startswith("x") else data.LABELS_MAGIC
        shape = (5, 28, 28) if key.startswith("x") else (5,)
        _write_idx(tmp_path / (stem + ".gz"), magic, shape, bytes(int(np.prod(shape))))
    assert data.load_fashion_mnist(str(tmp_path)).x_train.shape == (5, 28, 28)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8bnot really gzip")
    with pytest.raises(data.IDXFormatError, match="train-labels-idx1-ubyte.gz"):
        data.load_fashion_mnist(str(tmp_path))


# Where the data comes from ---------------------------------------------------------------------


def test_no_data_anywhere_gives_an_error_that_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_DIR", str(tmp_path / "nowhere"))

    def offline():
        raise OSError("no network")

    monkeypatch.setattr(data, "_load_from_keras", offline)
    with pytest.raises(data.DataNotFoundError) as info:
        data.load_fashion_mnist()
    message = str(info.value)
    assert "sudo apt-get install dataset-fashion-mnist" in message
    assert "--data_dir" in message
    assert "keras.datasets.fashion_mnist" in message and "no network" in message


def test_a_data_dir_without_the_files_is_an_error_not_a_silent_fallback(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_load_from_keras", lambda: pytest.fail("must not download"))
    with pytest.raises(data.DataNotFoundError, match=f"--data_dir={tmp_path}"):
        data.load_fashion_mnist(str(tmp_path))


# Flags and validation -------------------------------------------------------------------------


def _parse(*args):
    flag_values = flags.FlagValues()
    study_flags.define_flags(flag_values)
    flag_values(["prog", *args])
    return study_flags.config_from_flags(flag_values)


def test_default_flags_give_the_default_config_and_it_validates():
    config = _parse()
    assert config == study.StudyConfig()
    assert config.optimizers == ("lamb", "lars", "adamw", "momentum")
    assert config.batch_sizes == (256, 1024, 4096, 16384)
    study.validate(config)


_LEGW_TOO_LONG = (
    r"--base_warmup_epochs=1.0: with --warmup=legw .* at batch 16384 \(64x "
    r"--base_batch_size=256\) it lasts 64 epochs, more than --epochs=20. "
    r"Use --base_warmup_epochs <= 0.3125"
)


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--optimizers=lamb,adam"],
            r"--optimizers=lamb,adam: unknown optimizer 'adam'; allowed: lamb,lars,adamw,momentum",
        ),
        (["--optimizers=lamb,lamb"], r"--optimizers=lamb,lamb: an optimizer is listed twice"),
        (["--batch_sizes=256,0"], r"--batch_sizes=256,0: batch sizes must be positive"),
        (["--batch_sizes=256,-4"], r"--batch_sizes=256,-4: batch sizes must be positive"),
        (
            ["--batch_sizes=256,65536"],
            r"--batch_sizes=256,65536: batch size 65536 is larger than the 60000",
        ),
        (
            ["--train_examples=1000", "--batch_sizes=256,2048"],
            r"batch size 2048 is larger than the 1000",
        ),
        (
            ["--validation_examples=50000", "--batch_sizes=256,16384"],
            r"batch size 16384 is larger than the 10000",
        ),
        (
            ["--validation_examples=60000"],
            r"--validation_examples=60000: must be 0 .* or a count below 60000",
        ),
        (["--epochs=0"], r"--epochs=0: must be a positive integer"),
        (["--lamb_learning_rate=0"], r"--lamb_learning_rate=0.0: must be a finite number > 0"),
        (["--lars_weight_decay=-1"], r"--lars_weight_decay=-1.0: must be a finite number >= 0"),
        (["--base_warmup_epochs=1", "--epochs=20"], _LEGW_TOO_LONG),
    ],
)
def test_invalid_flags_are_rejected_with_a_message_naming_the_flag(args, message):
    with pytest.raises(study.FlagError, match=message):
        study.validate(_parse(*args))


def test_non_integer_batch_size_is_rejected_naming_the_flag():
    with pytest.raises(study.FlagError, match=r"--batch_sizes=256,big: 'big' is not an integer"):
        _parse("--batch_sizes=256,big")


def test_enum_flags_are_rejected_by_absl_with_the_allowed_values():
    message = r"--scaling=cubic: value should be one of <sqrt\|linear>"
    with pytest.raises(flags.IllegalFlagValueError, match=message):
        _parse("--scaling=cubic")


def test_fixed_warmup_keeps_epochs_and_legw_keeps_steps():
    config = study.StudyConfig(warmup="fixed", base_warmup_epochs=0.5)
    small = study.build_schedule(config, 256, 60000, base_learning_rate=0.01)
    large = study.build_schedule(config, 4096, 60000, base_learning_rate=0.01)
    assert (small.warmup_steps, large.warmup_steps) == (117, 7)  # 0.5 * 234 and 0.5 * 14 steps
    assert large.peak_learning_rate == pytest.approx(0.04)  # sqrt(16) * 0.01
    config = study.StudyConfig(warmup="legw", base_warmup_epochs=0.5, epochs=20)
    small = study.build_schedule(config, 256, 60000, base_learning_rate=0.01)
    large = study.build_schedule(config, 4096, 60000, base_learning_rate=0.01)
    assert large.peak_learning_rate == pytest.approx(0.04)
    # LEGW: 8 warmup epochs of 14 steps at 16x, about the 117 steps of 0.5 epoch at batch 256.
    assert abs(large.warmup_steps - small.warmup_steps) <= 14
    assert large.total_steps == 20 * 14
    no_warmup = study.StudyConfig(warmup="none", scaling="linear")
    none = study.build_schedule(no_warmup, 4096, 60000, 0.01)
    assert none.warmup_steps == 0 and none.peak_learning_rate == pytest.approx(0.16)


def test_fixed_warmup_rounds_up_so_a_short_epoch_still_warms_up():
    config = study.StudyConfig(warmup="fixed", base_warmup_epochs=0.125)
    # 0.125 epoch of 3 steps (batch 16384) is 0.375 steps: 1 step, not none.
    assert study.build_schedule(config, 16384, 60000, 0.01).warmup_steps == 1
    no_warmup = study.StudyConfig(warmup="fixed", base_warmup_epochs=0.0)
    assert study.build_schedule(no_warmup, 16384, 60000, 0.01).warmup_steps == 0


def test_validation_examples_hold_out_the_end_of_the_training_set():
    x = np.arange(20, dtype=np.float32).reshape(20, 1, 1)
    y = np.arange(20, dtype=np.int32)
    full = data.FashionMNIST(x, y, x[:3], y[:3], source="toy")
    held = study.select(full, train_examples=5, validation_examples=8)
    np.testing.assert_array_equal(held.y_train, np.arange(5))
    np.testing.assert_array_equal(held.y_test, np.arange(12, 20))
    assert "not the test set" in held.source
    assert study.select(full).y_test.tolist() == [0, 1, 2]


@pytest.mark.parametrize("name", models.MODELS)
def test_the_same_seed_builds_the_same_initial_weights(name):
    a = models.build_model(name, seed=3).get_weights()
    b = models.build_model(name, seed=3).get_weights()
    c = models.build_model(name, seed=4).get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert all(not np.array_equal(x, y) for x, y in zip(a, c) if x.ndim > 1)  # kernels


@needs_fashion_mnist
def test_lstm_reads_rows_as_time_steps_and_learns(fashion_mnist):
    model = models.build_model("lstm", seed=0)
    assert model.count_params() == 4 * (128 * (28 + 128) + 128) + 128 * 10 + 10
    config = study.StudyConfig(optimizers=("lamb",), batch_sizes=(128,), base_batch_size=128,
                               epochs=1, train_examples=2048, model="lstm",
                               base_warmup_epochs=0.1)
    study.validate(config)
    row = study.run_one(config, study.select(fashion_mnist, 2048), "lamb", 128, progress=False)
    # One epoch over 2,048 real images (16 steps; measured 26%): above chance (10%), far
    # from done.
    assert row["steps_run"] == 16 and 0.15 < row["test_accuracy"] < 0.9, row["test_accuracy"]


# End to end -----------------------------------------------------------------------------------


@needs_fashion_mnist
def test_tiny_study_writes_csv_png_and_json_with_one_row_per_run(fashion_mnist, tmp_path):
    config = study.StudyConfig(
        optimizers=("lamb", "momentum"),
        batch_sizes=(64, 128),
        base_batch_size=64,
        epochs=1,
        train_examples=4096,
        base_warmup_epochs=0.1,
        output_dir=str(tmp_path),
    )
    rows, paths = main.execute(config, dataset=fashion_mnist, progress=False)
    assert [(r["optimizer"], r["global_batch_size"]) for r in rows] == [
        ("lamb", 64), ("lamb", 128), ("momentum", 64), ("momentum", 128)
    ]
    with open(paths["csv"]) as f:
        table = list(csv.DictReader(f))
    assert [(r["optimizer"], int(r["global_batch_size"])) for r in table] == [
        ("lamb", 64), ("lamb", 128), ("momentum", 64), ("momentum", 128)
    ]
    assert set(report.COLUMNS) == set(table[0])
    for r in table:
        assert int(r["steps_run"]) == int(r["total_steps"]) == 4096 // int(r["global_batch_size"])
        # One epoch on 4096 real examples reaches about 75%; 50% is far above chance (10%).
        assert 0.5 < float(r["test_accuracy"]) <= 1.0
        assert r["diverged"] == "False"
    assert float(table[0]["delta_vs_base_points"]) == 0.0
    with open(paths["plot"], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(paths["config"]) as f:
        record = json.load(f)
    assert record["flags"]["optimizers"] == ["lamb", "momentum"]
    assert record["train_examples_used"] == 4096 and record["last_partial_batch"] == "dropped"
    with open(paths["results"]) as f:
        assert len(json.load(f)["rows"]) == 4


def test_without_matplotlib_the_study_stops_before_reading_or_training(tmp_path, monkeypatch):
    # The plot is drawn last; a missing matplotlib must stop the study before its first run.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setattr(data, "load_fashion_mnist", lambda *a, **k: pytest.fail("read data"))
    monkeypatch.setattr(study, "run_one", lambda *a, **k: pytest.fail("trained"))
    output_dir = tmp_path / "study"
    config = study.StudyConfig(batch_sizes=(64, 128), base_batch_size=64, epochs=1,
                               output_dir=str(output_dir))
    with pytest.raises(runtime.WriterNotInstalledError, match="matplotlib") as error:
        main.execute(config, progress=False)
    assert isinstance(error.value, ImportError)
    assert "pip install tf-lamb[recipes]" in str(error.value)
    assert not output_dir.exists()


def test_plot_labels_of_collapsed_runs_do_not_overlap(tmp_path, monkeypatch):
    # Five runs below the axis at two neighbouring batches, as the LEGW classifier sweep had:
    # every label must stay readable (no two labels' boxes intersect).
    from matplotlib.figure import Figure

    boxes = []
    savefig = Figure.savefig

    def capture(fig, *args, **kwargs):
        renderer = fig.canvas.get_renderer()
        boxes.extend(t.get_window_extent(renderer) for ax in fig.axes for t in ax.texts)
        return savefig(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", capture)
    names = ("lamb (linear)", "momentum (linear)", "momentum (none)")
    accuracy = {(names[0], 2048): 0.1, (names[0], 8192): 0.1, (names[1], 2048): 0.1,
                (names[1], 8192): 0.35, (names[2], 8192): 0.21}
    rows = [{"optimizer": name, "global_batch_size": batch,
             "test_accuracy": accuracy.get((name, batch), 0.9)}
            for name in names for batch in (128, 512, 2048, 8192)]
    report.plot(rows, str(tmp_path / "plot.png"), 128)
    assert len(boxes) == 5
    for i, first in enumerate(boxes):
        for second in boxes[i + 1:]:
            assert not first.overlaps(second), (first, second)


def test_the_study_pages_table_is_the_committed_run():
    # Every accuracy and change on the study's page is the committed run's number
    # (docs/studies/batch_scaling/results.csv), and the page's learning rates are its flags.
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    folder = os.path.join(root, "docs", "studies", "batch_scaling")
    with open(os.path.join(folder, "results.csv")) as f:
        results = list(csv.DictReader(f))
    with open(os.path.join(folder, "config.json")) as f:
        flags_used = json.load(f)["flags"]
    with open(os.path.join(root, "docs", "studies", "batch_scaling.md")) as f:
        rows = [line for line in f if line.startswith("| ") and "(lr " in line]
    names = {"LAMB": "lamb", "LARS": "lars", "AdamW": "adamw", "momentum SGD": "momentum"}
    assert len(rows) == 4 and len(results) == 16
    for line in rows:
        cells = [c.strip().strip("*") for c in line.strip().strip("|").split("|")]
        label, _, rate = cells[0].partition(" (lr ")
        name = names[label]
        assert float(rate.split(",")[0].rstrip(")")) == flags_used[f"{name}_learning_rate"]
        runs = sorted((r for r in results if r["optimizer"] == name),
                      key=lambda r: int(r["global_batch_size"]))
        for cell, run in zip(cells[1:], runs):
            assert cell.startswith(f"{100 * float(run['test_accuracy']):.2f}"), (cell, run)
            if float(run["test_accuracy"]) > 0.5 and run is not runs[0]:
                assert f"({float(run['delta_vs_base_points']):+.2f})" in cell, (cell, run)
