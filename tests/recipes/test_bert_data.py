"""Tests of the BERT data pipeline: corpus reading, WordPiece, instance creation (masking and
next-sentence statistics on real text) and the TFRecord format."""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from recipes.bert import create_pretraining_data, input_pipeline, instances, records
from recipes.common import corpus, runtime, tokenization


@pytest.fixture(scope="module")
def documents(tutorial_dir):
    return corpus.read_document_dir(tutorial_dir)


@pytest.fixture(scope="module")
def tokenizer(documents, tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    return tokenization.build_vocab(documents, 2000, str(path))


@pytest.fixture(scope="module")
def tokenized(documents, tokenizer):
    return [tokenizer.tokenize(doc) for doc in documents]


# Corpus -------------------------------------------------------------------------------------


def test_sentence_files_split_documents_at_blank_lines(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("One sentence here.\nAnother one.\n\n\nSecond document.\n")
    other = tmp_path / "b.txt"
    other.write_text("Third document, no blank line at the end.")
    docs = corpus.read_sentence_files([str(path), str(other)])
    assert docs == [
        ["One sentence here.", "Another one."],
        ["Second document."],
        ["Third document, no blank line at the end."],
    ]


def test_missing_and_empty_inputs_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        corpus.read_sentence_files([str(tmp_path / "nope.txt")])
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(ValueError, match="empty.txt"):
        corpus.read_sentence_files([str(empty)])
    with pytest.raises(FileNotFoundError, match="python3.11-doc"):
        corpus.read_document_dir(str(tmp_path / "missing_dir"))
    with pytest.raises(ValueError, match="no file matches"):
        corpus.read_document_dir(str(tmp_path), "*.rst")


def test_rst_markup_code_and_directives_are_removed():
    text = """\
Title
=====

.. index::
   single: hidden

The :keyword:`!if` statement uses ``x`` and `a link <http://x>`_ for *emphasis*.  It works.
For example::

   >>> x = 1
   print(x)

.. note::
   A note body that is dropped.

- A list item sentence that stays here.
"""
    paragraphs = corpus.rst_to_paragraphs(text)
    assert paragraphs == [
        "The if statement uses x and a link for emphasis.  It works. For example:",
        "A list item sentence that stays here.",
    ]
    # "It works." and "For example:" are under 3 words: dropped as fragments.
    assert corpus.split_sentences(paragraphs) == [
        "The if statement uses x and a link for emphasis.",
        "A list item sentence that stays here.",
    ]


def test_default_corpus_is_real_prose(documents):
    sentences = [s for doc in documents for s in doc]
    assert len(documents) >= 10 and len(sentences) > 500
    words = " ".join(sentences).split()
    # English prose, not code: "the" is the commonest word and markup is gone.
    assert max(set(w.lower() for w in words), key=[w.lower() for w in words].count) == "the"
    assert not any(":keyword:" in s or "``" in s or s.startswith(">>>") for s in sentences)


# WordPiece ----------------------------------------------------------------------------------


def test_built_vocab_has_special_tokens_first_and_round_trips(tokenizer, tmp_path):
    assert tokenizer.vocab[:5] == tokenization.SPECIAL_TOKENS
    # Sorted: builds that learn the same pieces give them the same ids, whatever order the
    # trainer produced them in (it changes between processes).
    assert tokenizer.vocab[5:] == sorted(tokenizer.vocab[5:])
    assert (tokenizer.pad_id, tokenizer.cls_id, tokenizer.sep_id, tokenizer.mask_id) == (0, 2, 3, 4)
    assert 1000 < tokenizer.vocab_size <= 2000
    ids = tokenizer.tokenize(["The interpreter reads unbelievably long statements."])[0]
    assert tokenizer.unk_id not in ids and len(ids) >= 6
    assert any(tokenizer.is_continuation(i) for i in ids)  # a rare word splits into pieces
    loaded = tokenization.WordPiece(tokenizer.vocab_file)
    assert loaded.tokenize(["The interpreter reads."]) == tokenizer.tokenize(["The interpreter reads."])


def test_vocab_without_special_tokens_is_rejected(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\n[UNK]\nthe\n")
    with pytest.raises(ValueError, match=r"\[CLS\]"):
        tokenization.WordPiece(str(path))
    with pytest.raises(ValueError, match="vocab_size"):
        tokenization.build_vocab([["a b c"]], 10, str(tmp_path / "v.txt"))


# Instances ----------------------------------------------------------------------------------


def _make(tokenized, tokenizer, seed=0, **kwargs):
    options = instances.InstanceOptions(**{"duplication_factor": 3, **kwargs})
    return instances.create_instances(tokenized, tokenizer, options, seed=seed), options


def test_masking_follows_the_80_10_10_rule_on_real_text(tokenized, tokenizer):
    made, options = _make(tokenized, tokenizer)
    masked = same = random_token = 0
    for inst in made:
        for position, true_id in zip(inst.masked_lm_positions, inst.masked_lm_ids):
            now = inst.input_ids[position]
            masked += now == tokenizer.mask_id
            same += now == true_id
            random_token += now not in (tokenizer.mask_id, true_id)
    total = masked + same + random_token
    # A random replacement can draw the true id (1 in 2000) or [MASK]: negligible here.
    # Tolerance: 4 binomial standard deviations at total >= 20,000 is under 0.012.
    assert total > 20000
    assert masked / total == pytest.approx(0.8, abs=0.012)
    assert same / total == pytest.approx(0.1, abs=0.01)
    assert random_token / total == pytest.approx(0.1, abs=0.01)


def test_masked_share_positions_and_segments(tokenized, tokenizer):
    made, options = _make(tokenized, tokenizer)
    shares, labels = [], []
    for inst in made:
        ids, n = inst.input_ids, len(inst.input_ids)
        assert n <= options.max_seq_length
        assert ids[0] == tokenizer.cls_id and ids[-1] == tokenizer.sep_id
        sep = inst.segment_ids.index(1) - 1
        assert ids[sep] == tokenizer.sep_id
        assert inst.segment_ids == [0] * (sep + 1) + [1] * (n - sep - 1)
        positions = inst.masked_lm_positions
        assert positions == sorted(set(positions))
        assert not {0, sep, n - 1} & set(positions)  # never [CLS] or [SEP]
        assert 1 <= len(positions) <= options.max_predictions_per_seq
        assert len(positions) == min(options.max_predictions_per_seq, max(1, round(n * 0.15)))
        shares.append(len(positions) / n)
        labels.append(inst.next_sentence_label)
    assert np.mean(shares) == pytest.approx(0.15, abs=0.01)
    # Random-next pairs: half of the multi-sentence chunks plus every one-sentence chunk.
    assert 0.45 < np.mean(labels) < 0.65
    lengths = [len(i.input_ids) for i in made]
    assert max(lengths) == options.max_seq_length
    assert np.mean(np.array(lengths) < 64) > 0.03  # short_seq_prob 0.1 makes short ones


def test_whole_word_masking_masks_every_piece_of_a_word(tokenized, tokenizer):
    made, _ = _make(tokenized, tokenizer, whole_word_masking=True, duplication_factor=1)
    checked = 0
    for inst in made:
        chosen = set(inst.masked_lm_positions)
        original = list(inst.input_ids)
        for p, true_id in zip(inst.masked_lm_positions, inst.masked_lm_ids):
            original[p] = true_id
        specials = {0, inst.segment_ids.index(1) - 1, len(original) - 1}
        for p in range(1, len(original)):
            piece = p not in specials and tokenizer.is_continuation(original[p])
            if piece and p - 1 not in specials:
                # A "##" piece is masked exactly when the piece before it (same word) is.
                assert (p in chosen) == (p - 1 in chosen)
                checked += p in chosen
    assert checked > 50


def test_instances_repeat_with_the_seed_and_change_without(tokenized, tokenizer):
    a, _ = _make(tokenized, tokenizer, seed=1, duplication_factor=1)
    b, _ = _make(tokenized, tokenizer, seed=1, duplication_factor=1)
    c, _ = _make(tokenized, tokenizer, seed=2, duplication_factor=1)
    assert a == b and a != c


@pytest.mark.parametrize(
    "kwargs, name",
    [({"max_seq_length": 4}, "max_seq_length"), ({"masked_lm_prob": 0.0}, "masked_lm_prob"),
     ({"short_seq_prob": 1.5}, "short_seq_prob"), ({"duplication_factor": 0}, "duplication_factor"),
     ({"max_predictions_per_seq": 0}, "max_predictions_per_seq")],
)
def test_bad_instance_options_name_the_flag(kwargs, name):
    with pytest.raises(ValueError, match=f"--{name}"):
        instances.InstanceOptions(**kwargs)


# TFRecords ----------------------------------------------------------------------------------


def test_records_round_trip_in_googles_format(tokenized, tokenizer, tmp_path):
    made, options = _make(tokenized, tokenizer, duplication_factor=1)
    made = made[:50]
    paths = records.write_shards(made, str(tmp_path / "seq128" / "train"), 3, 128, 20)
    assert [os.path.basename(p) for p in paths] == [
        f"train-0000{i}-of-00003.tfrecord" for i in range(3)
    ]
    assert not any(p.endswith(".tmp") for p in os.listdir(tmp_path / "seq128"))
    names = records.feature_names(paths[0])
    assert names == records.GOOGLE_NAMES
    parse = records.parse_fn(names, 128, 20)
    first = next(iter(tf.data.TFRecordDataset(paths[0]).map(parse)))
    inst = made[0]
    n, k = len(inst.input_ids), len(inst.masked_lm_positions)
    assert first["input_ids"].dtype == tf.int32 and first["input_ids"].shape == (128,)
    np.testing.assert_array_equal(first["input_ids"][:n], inst.input_ids)
    assert int(tf.reduce_sum(first["input_ids"][n:])) == 0
    np.testing.assert_array_equal(first["input_mask"], [1] * n + [0] * (128 - n))
    np.testing.assert_array_equal(first["masked_lm_positions"][:k], inst.masked_lm_positions)
    np.testing.assert_array_equal(first["masked_lm_ids"][:k], inst.masked_lm_ids)
    np.testing.assert_array_equal(first["masked_lm_weights"], [1.0] * k + [0.0] * (20 - k))
    assert int(first["next_sentence_labels"][0]) == inst.next_sentence_label


def test_model_garden_names_are_read_and_foreign_records_rejected(tmp_path):
    def feature(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))

    path = str(tmp_path / "mg.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        example = tf.train.Example(features=tf.train.Features(feature={
            "input_word_ids": feature([2, 7, 3] + [0] * 5), "input_mask": feature([1] * 3 + [0] * 5),
            "input_type_ids": feature([0] * 8), "masked_lm_positions": feature([1, 0]),
            "masked_lm_ids": feature([9, 0]),
            "masked_lm_weights": tf.train.Feature(float_list=tf.train.FloatList(value=[1.0, 0.0])),
            "next_sentence_labels": feature([0]),
        }))
        writer.write(example.SerializeToString())
    names = records.feature_names(path)
    assert names == records.MODEL_GARDEN_NAMES
    parsed = next(iter(tf.data.TFRecordDataset(path).map(records.parse_fn(names, 8, 2))))
    assert parsed["input_ids"].numpy().tolist()[:3] == [2, 7, 3]
    assert "segment_ids" in parsed

    other = str(tmp_path / "other.tfrecord")
    with tf.io.TFRecordWriter(other) as writer:
        writer.write(tf.train.Example(features=tf.train.Features(
            feature={"image/encoded": feature([1])})).SerializeToString())
    with pytest.raises(ValueError, match="other.tfrecord.*not a BERT pre-training record"):
        records.feature_names(other)
    empty = str(tmp_path / "empty.tfrecord")
    tf.io.TFRecordWriter(empty).close()
    with pytest.raises(ValueError, match="empty.tfrecord: the file holds no records"):
        records.feature_names(empty)


def test_reader_splits_files_across_hosts_without_repeating_an_example(tokenized, tokenizer,
                                                                        tmp_path):
    made, _ = _make(tokenized, tokenizer, duplication_factor=1)
    paths = records.write_shards(made[:120], str(tmp_path / "train"), 4, 128, 20)

    def rows(dataset, batches):
        found = []
        for batch in dataset.take(batches):
            assert batch["input_ids"].shape == (6, 128) and batch["input_ids"].dtype == tf.int32
            assert batch["masked_lm_weights"].shape == (6, 20)
            assert batch["next_sentence_labels"].shape == (6, 1)
            found += [tuple(r) for r in batch["input_ids"].numpy()]
        return found

    # Two hosts, 2 files (60 examples) each; 10 batches of 6 = one pass over a host's files
    # (in the files' order: the example shuffle draws across passes).
    hosts = [rows(input_pipeline.make_dataset(paths, 128, 20, 6, 2, i, shuffle_buffer=0), 10)
             for i in range(2)]
    for found in hosts:
        assert len(set(found)) == 60  # each example once per pass
    assert not set(hosts[0]) & set(hosts[1])
    # With no example shuffle, one host reads what the two read, batch for batch.
    one = input_pipeline.make_dataset(paths, 128, 20, 12, shuffle_buffer=0)
    split = [input_pipeline.make_dataset(paths, 128, 20, 6, 2, i, shuffle_buffer=0)
             for i in range(2)]
    for both, first, second in zip(one.take(5), *[d.take(5) for d in split]):
        assert sorted(map(tuple, both["input_ids"].numpy())) == sorted(
            map(tuple, np.concatenate([first["input_ids"], second["input_ids"]])))
    with pytest.raises(ValueError, match="4 input files cannot be split across 8 hosts"):
        input_pipeline.make_dataset(paths, 128, 20, 6, 8, 0)
    with pytest.raises(FileNotFoundError, match="--train_files: no file matches"):
        runtime.list_files(str(tmp_path / "nothing-*"))


# The program --------------------------------------------------------------------------------


def test_program_writes_both_phases_with_metadata_and_no_heldout_leak(documents, tutorial_dir,
                                                                   tmp_path):
    fv = flags.FlagValues()
    create_pretraining_data.define_flags(fv)
    fv([
        "prog", f"--input_dir={tutorial_dir}", f"--output_dir={tmp_path}", "--vocab_size=1500",
        "--duplication_factor=1", "--num_shards=2", "--heldout_fraction=0.2",
    ])
    results = create_pretraining_data.create(fv, log=lambda *_: None)
    assert sorted(results) == [128, 512]
    for length, predictions in ((128, 20), (512, 80)):
        directory = tmp_path / f"seq{length}"
        metadata = json.loads((directory / "metadata.json").read_text())
        assert metadata["max_seq_length"] == length
        assert metadata["max_predictions_per_seq"] == predictions
        assert metadata["train_examples"] > metadata["heldout_examples"] > 0
        assert len(metadata["train_files"]) == 2 and len(metadata["heldout_files"]) == 1
        counted = sum(1 for f in metadata["train_files"]
                      for _ in tf.data.TFRecordDataset(str(directory / f)))
        assert counted == metadata["train_examples"]
    # No leak: each record's first segment, unmasked, is a run of tokens of one document of
    # its own split (segments are whole sentences of one document, at most cut at the ends).
    train_docs, held_docs = corpus.split_documents(documents, 0.2, fv.seed)
    tokenizer = tokenization.WordPiece(str(tmp_path / "vocab.txt"))

    def streams(docs):
        return "|".join(" ".join(str(i) for s in tokenizer.tokenize(d) for i in s) + " "
                        for d in docs)

    def first_segments(pattern):
        for path in sorted((tmp_path / "seq128").glob(pattern)):
            for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
                f = tf.train.Example.FromString(record).features.feature
                ids = list(f["input_ids"].int64_list.value)
                weights = f["masked_lm_weights"].float_list.value
                for p, i, w in zip(f["masked_lm_positions"].int64_list.value,
                                   f["masked_lm_ids"].int64_list.value, weights):
                    if w > 0:
                        ids[p] = i
                yield " ".join(str(i) for i in ids[1:ids.index(tokenizer.sep_id)]) + " "

    held_text, train_text = streams(held_docs), streams(train_docs)
    held = list(first_segments("heldout-*"))
    assert held and all(seg in held_text for seg in held)
    assert sum(seg in train_text for seg in held) <= 0.02 * len(held)  # boilerplate only
    # The check would see a leak: training records are found in the training documents.
    train = list(first_segments("train-*"))[:200]
    assert all(seg in train_text for seg in train)
    assert sum(seg in held_text for seg in train) <= 0.02 * len(train)


@pytest.mark.slow
def test_program_rebuilds_the_same_bytes_from_a_vocab_file(tokenizer, tutorial_dir, tmp_path):
    # Two processes, as two users' builds are: protobuf orders an Example's features per process
    # unless asked for a deterministic order, so bytes written in one process can differ from
    # another's with the same content (measured: every shard of the default corpus).
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("".join(token + "\n" for token in tokenizer.vocab), encoding="utf-8")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    builds = []
    for name in ("first", "second"):
        out = tmp_path / name
        subprocess.run([
            sys.executable, "-m", "recipes.bert.create_pretraining_data",
            f"--input_dir={tutorial_dir}", f"--output_dir={out}", f"--vocab_file={vocab}",
            "--max_seq_lengths=128", "--max_predictions_per_seq=20", "--duplication_factor=2",
            "--num_shards=2",
        ], env=env, cwd=root, check=True, capture_output=True, timeout=300)
        builds.append({p.name: p.read_bytes() for p in (out / "seq128").glob("*.tfrecord")})
        metadata = json.loads((out / "seq128" / "metadata.json").read_text())
        assert metadata["vocab_sha256"] == hashlib.sha256(vocab.read_bytes()).hexdigest()
    assert sorted(builds[0]) == ["heldout-00000-of-00001.tfrecord",
                                 "train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
    assert builds[0] == builds[1]


def test_program_checks_its_flags_before_work(tmp_path):
    fv = flags.FlagValues()
    create_pretraining_data.define_flags(fv)
    fv(["prog", f"--output_dir={tmp_path}", "--max_seq_lengths=128,512",
        "--max_predictions_per_seq=20"])
    with pytest.raises(ValueError, match="one value per --max_seq_lengths"):
        create_pretraining_data.create(fv, log=lambda *_: None)
    fv.max_predictions_per_seq = ["20", "80"]
    fv.masked_lm_prob = 2.0
    with pytest.raises(ValueError, match="--masked_lm_prob"):
        create_pretraining_data.create(fv, log=lambda *_: None)
    with pytest.raises(ValueError, match="--heldout_fraction"):
        corpus.split_documents([["a"]] * 10, 0.9, 0)
