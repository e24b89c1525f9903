"""NumPy shards (recipes/common/array_shards.py) and BERT's examples in them
(recipes/bert/features.py): written whole, read by grain in a seeded order that changes each
epoch, split across hosts, resumed at any batch without reading, and holding the very
examples of the TFRecords."""

import importlib.util

import numpy as np
import pytest

from recipes.bert import features
from recipes.common import array_shards

from .bert_runs import pretrain

needs_grain = pytest.mark.skipif(importlib.util.find_spec("grain") is None,
                                 reason="grain is not installed (scripts/setup.sh --test)")

DTYPE = np.dtype([("x", np.int32, (3,)), ("y", np.float32, ())])


def _write(directory, count, num_shards=4):
    """``count`` records with x = [i, i, i] and y = i / 2 in ``num_shards`` files."""
    records = np.zeros(count, DTYPE)
    records["x"] = np.arange(count)[:, None]
    records["y"] = np.arange(count) / 2
    return array_shards.write_shards(records, str(directory / "train"), num_shards)


def _ids(batches, count):
    """The record ids (``x[:, 0]``) of the first ``count`` batches, one row per batch."""
    rows = []
    for batch in batches:
        rows.append(batch["x"][:, 0].tolist())
        if len(rows) == count:
            break
    return rows


def test_shards_are_written_round_robin_and_read_in_file_order(tmp_path):
    paths = _write(tmp_path, 10, num_shards=4)
    assert [p.rsplit("/", 1)[1] for p in paths] == [
        f"train-0000{i}-of-00004.npy" for i in range(4)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.rsplit("/", 1)[1] for p in paths)  # no temporary file left
    source = array_shards.ShardSource(paths)
    assert len(source) == 10
    assert [int(source[i]["x"][0]) for i in range(10)] == [0, 4, 8, 1, 5, 9, 2, 6, 3, 7]
    record = source[4]
    assert record["x"].dtype == np.int32 and record["x"].shape == (3,)
    assert record["y"] == pytest.approx(2.5)
    assert len(array_shards.write_shards(np.zeros(2, DTYPE), str(tmp_path / "few"), 8)) == 2
    with pytest.raises(ValueError, match="`num_shards` must be >= 1. Received: 0"):
        array_shards.write_shards(np.zeros(2, DTYPE), str(tmp_path / "none"), 0)


@needs_grain
def test_training_batches_shuffle_each_epoch_by_seed_and_resume_at_any_batch(tmp_path):
    paths = _write(tmp_path, 24)
    batches = array_shards.make_batches(paths, 6, seed=3)
    epochs = _ids(batches, 8)
    first, second = sum(epochs[:4], []), sum(epochs[4:], [])
    assert sorted(first) == sorted(second) == list(range(24))  # each epoch: every record once
    assert first != second and first != sorted(first)  # a new order each epoch
    assert _ids(array_shards.make_batches(paths, 6, seed=3), 8) == epochs  # seeded
    assert _ids(array_shards.make_batches(paths, 6, seed=4), 4) != epochs[:4]
    # A resumed run (5 batches consumed) reads on from the sixth, across the epoch boundary.
    assert _ids(array_shards.make_batches(paths, 6, seed=3, skip=30), 3) == epochs[5:8]
    assert sum(_ids(array_shards.make_batches(paths, 6, shuffle=False), 4), []) == [
        0, 4, 8, 12, 16, 20, 1, 5, 9, 13, 17, 21, 2, 6, 10, 14, 18, 22, 3, 7, 11, 15, 19, 23]
    with pytest.raises(ValueError, match="skip=4 is not a whole number of batches of 6"):
        array_shards.make_batches(paths, 6, skip=4)
    # Any int seeds the order (grain takes [0, 2**32)): -1 is 2**32 - 1.
    assert _ids(array_shards.make_batches(paths, 6, seed=-1), 4) == _ids(
        array_shards.make_batches(paths, 6, seed=2**32 - 1), 4) != epochs[:4]


@needs_grain
def test_a_resumed_run_reads_nothing_it_skips(tmp_path, monkeypatch):
    # 200 epochs of 24 records skipped: the first batch after them costs a few reads (grain
    # reads ahead a few batches), not the 4,800 skipped.
    paths = _write(tmp_path, 24)
    reads = []
    read = array_shards.ShardSource.__getitem__
    monkeypatch.setattr(array_shards.ShardSource, "__getitem__",
                        lambda self, index: reads.append(index) or read(self, index))
    expected = _ids(array_shards.make_batches(paths, 6, seed=3), 801)[-1]
    reads.clear()
    assert _ids(array_shards.make_batches(paths, 6, seed=3, skip=4800), 1) == [expected]
    assert 6 <= len(reads) <= 6 * 12


@needs_grain
def test_hosts_read_their_own_files_in_training_and_share_records_in_evaluation(tmp_path):
    paths = _write(tmp_path, 24)  # 6 records per file
    host_ids = [sum(_ids(array_shards.make_batches(paths, 3, num_shards=2, shard_index=h),
                         4), []) for h in range(2)]
    assert sorted(host_ids[0]) == sorted(r for f in (0, 2) for r in range(f, 24, 4))
    assert sorted(host_ids[1]) == sorted(r for f in (1, 3) for r in range(f, 24, 4))
    with pytest.raises(ValueError, match="--train_files: 4 input files cannot be split across 8"):
        array_shards.make_batches(paths, 3, num_shards=8)
    # Evaluation: one pass, every third record per host, the last batch short.
    passes = [list(array_shards.make_batches(paths[:3], 4, num_shards=3, shard_index=h,
                                             training=False)) for h in range(3)]
    assert [[len(b["x"]) for b in p] for p in passes] == [[4, 2]] * 3
    seen = sorted(int(i) for p in passes for b in p for i in b["x"][:, 0])
    assert seen == sorted(r for f in range(3) for r in range(f, 24, 4))
    dropped = array_shards.make_batches(paths[:3], 4, training=False, drop_remainder=True)
    assert [len(b["x"]) for b in dropped] == [4, 4, 4, 4]


@needs_grain
def test_files_that_are_not_shards_or_do_not_match_stop_naming_them(tmp_path):
    paths = _write(tmp_path, 8, num_shards=2)
    plain = tmp_path / "plain.npy"
    np.save(plain, np.zeros((4, 3), np.int32))
    with pytest.raises(ValueError, match=f"--eval_files: {plain} holds a int32 array"):
        array_shards.ShardSource([paths[0], str(plain)], "--eval_files")
    other = array_shards.write_shards(np.zeros(2, [("x", np.int64, (3,))]),
                                      str(tmp_path / "other"), 1)
    with pytest.raises(ValueError, match=f"{other[0]} holds the fields"):
        array_shards.ShardSource(paths + other)
    empty = array_shards.write_shards(np.zeros(0, DTYPE), str(tmp_path / "empty"), 1)
    with pytest.raises(ValueError, match="--train_files: the files hold no records"):
        array_shards.make_batches(empty, 2)
    with pytest.raises(ValueError, match="not both"):
        array_shards.is_array_shards(paths + [str(tmp_path / "train-0.tfrecord")])
    assert not array_shards.is_array_shards([str(tmp_path / "train-0.tfrecord")])
    with pytest.raises(ValueError, match="structured"):
        array_shards.write_shards(np.zeros(3), str(tmp_path / "bad"), 1)
    cut = tmp_path / "cut.npy"  # a copy that stopped short
    cut.write_bytes(open(paths[0], "rb").read()[:-10])
    empty_file = tmp_path / "empty_file.npy"
    empty_file.write_bytes(b"")
    for bad in (cut, empty_file):
        with pytest.raises(ValueError, match=f"--eval_files: {bad} is not a whole NumPy array"):
            array_shards.ShardSource([str(bad)], "--eval_files")
    with pytest.raises(ValueError, match=f"--eval_files: {tmp_path}/missing.npy does not exist"):
        array_shards.ShardSource([str(tmp_path / "missing.npy")], "--eval_files")
    with pytest.raises(ValueError, match="must be on a local or mounted file system"):
        array_shards.load("gs://bucket/train-00000-of-00001.npy")


def test_bert_shards_hold_the_examples_of_the_records(bert_data_dir, bert_array_dir):
    # Built from the same text, vocabulary and seed, the two formats hold the same examples
    # in the same order; the records parsed by the recipe's tf.data pipeline equal the rows.
    pytest.importorskip("tensorflow")
    from recipes.bert import input_pipeline
    from recipes.common import runtime

    for seq, predictions in ((128, 20), (512, 80)):
        for split in ("train", "heldout"):
            records = runtime.list_files(f"{bert_data_dir}/seq{seq}/{split}-*")
            shards = runtime.list_files(f"{bert_array_dir}/seq{seq}/{split}-*")
            assert [p.rsplit(".", 1)[0].rsplit("/", 1)[1] for p in records] == [
                p.rsplit(".", 1)[0].rsplit("/", 1)[1] for p in shards]
            for record_file, shard_file in zip(records, shards):
                rows = np.load(shard_file)
                assert rows.dtype == features.record_dtype(seq, predictions)
                parsed = next(iter(input_pipeline.make_dataset(
                    [record_file], seq, predictions, 10000, training=False)))
                assert len(parsed["input_ids"]) == len(rows) > 0
                for name in rows.dtype.names:
                    np.testing.assert_array_equal(parsed[name].numpy(), rows[name], name)
                    assert parsed[name].dtype.name == rows[name].dtype.name, name


def test_bert_shards_that_do_not_fit_the_flags_stop_naming_file_and_flag(bert_array_dir,
                                                                          tmp_path):
    shard = f"{bert_array_dir}/seq512/train-00000-of-00002.npy"
    with pytest.raises(ValueError, match="input_ids .128,. and masked_lm_ids .20,., not "
                       "--max_seq_length=512 and --max_predictions_per_seq=80"):
        features.check_shard(f"{bert_array_dir}/seq128/train-00000-of-00002.npy", 512, 80, 1000)
    features.check_shard(shard, 512, 80, 1000)
    with pytest.raises(ValueError, match="--eval_files: .* does not fit the model's "
                       "--vocab_size=10"):
        features.check_shard(shard, 512, 80, 10, flag="--eval_files")
    # The right shapes in the wrong dtype are no phase mix-up.
    rows = np.load(shard)
    wide = np.zeros(len(rows), [(n, np.int64, rows.dtype[n].shape) for n in rows.dtype.names])
    other = array_shards.write_shards(wide, str(tmp_path / "wide"), 1)[0]
    with pytest.raises(ValueError, match="not a shard of BERT pre-training examples"):
        features.check_shard(other, 512, 80, 1000)
    scalar = array_shards.write_shards(
        np.zeros(2, [("input_ids", np.int32), ("masked_lm_ids", np.int32)]),
        str(tmp_path / "scalar"), 1)[0]
    with pytest.raises(ValueError, match="not a shard of BERT pre-training examples"):
        features.check_shard(scalar, 512, 80, 1000)


def test_every_shard_is_checked_as_each_host_reads_its_own(bert_array_dir):
    # A glob that takes in another phase's file stops before training, naming that file,
    # whichever host would read it.
    from recipes.bert import pretrain

    first = f"{bert_array_dir}/seq128/train-00000-of-00002.npy"
    other = f"{bert_array_dir}/seq512/train-00001-of-00002.npy"
    pretrain._array_input(None, None, [first], [first], (128, 20), 1000)
    with pytest.raises(ValueError, match=f"--train_files: {other}: its records hold input_ids"):
        pretrain._array_input(None, None, [first, other], [], (128, 20), 1000)
    with pytest.raises(ValueError, match=f"--eval_files: {other}"):
        pretrain._array_input(None, None, [first], [first, other], (128, 20), 1000)


def test_tensorflow_refuses_numpy_shards_naming_the_backend(bert_array_dir, tmp_path):
    proc = pretrain(bert_array_dir, tmp_path / "run", check=False)
    assert proc.returncode == 1
    assert ("error: --train_files: NumPy shards (.npy) are read on the JAX backend "
            "(KERAS_BACKEND=jax)") in proc.stderr
    assert not (tmp_path / "run").exists()
