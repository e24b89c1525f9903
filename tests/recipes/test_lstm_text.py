"""Tests of the LSTM language-model task (recipes/lstm/text.py, language_model.py and
``--task=text``) on the Python tutorial's real prose."""

import csv
import io
import math

import numpy as np
import pytest
from absl import flags

from recipes.common import corpus, study, tokenization
from recipes.common import study_flags
from recipes.common.loop import make_evaluate
from recipes.lstm import language_model, text
from recipes.lstm import main as legw_main


@pytest.fixture(scope="module")
def tutorial_text(tutorial_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("lm")
    return text.load(str(out), tutorial_dir, "*.rst.txt", vocab_size=600, seq_length=20,
                     heldout_fraction=0.15, seed=3), out


def test_windows_are_the_stream_cut_with_targets_one_token_ahead():
    stream = np.random.default_rng(0).integers(5, 1000, size=103)
    inputs, targets = text.windows(stream, 10)
    assert inputs.shape == targets.shape == (10, 10) and inputs.dtype == np.int32
    np.testing.assert_array_equal(inputs.ravel(), stream[:100])
    np.testing.assert_array_equal(targets.ravel(), stream[1:101])
    assert text.windows(stream, 102)[0].shape == (1, 102)
    assert text.windows(stream, 103)[0].shape == (0, 103)


def test_load_holds_out_whole_documents_and_builds_the_vocab_on_training_text(tutorial_text,
                                                                              tutorial_dir):
    data, out = tutorial_text
    documents = corpus.read_document_dir(tutorial_dir, "*.rst.txt", min_sentences=1)
    train_docs, held_docs = corpus.split_documents(documents, 0.15, 3)
    assert len(held_docs) == 3 and "14 training / 3 held-out (test) documents" in data.source
    tokenizer = tokenization.WordPiece(str(out / "vocab.txt"))
    assert tokenizer.vocab_size == data.num_classes <= 600
    train = text.token_stream(train_docs, tokenizer)
    held = text.token_stream(held_docs, tokenizer)
    np.testing.assert_array_equal(data.x_train.ravel(), train[: data.x_train.size])
    np.testing.assert_array_equal(data.y_test.ravel(), held[1 : data.y_test.size + 1])
    assert data.x_train.shape[1] == 20 and len(data.x_train) == (len(train) - 1) // 20
    # Every sentence ends in [SEP]; the held-out text is real prose, mostly known word pieces.
    sentences = sum(len(d) for d in train_docs)
    assert np.sum(train == tokenizer.sep_id) == sentences
    assert np.mean(held == tokenizer.unk_id) < 0.01


def test_validation_sets_the_test_documents_aside(tutorial_dir, tutorial_text, tmp_path):
    data, out = tutorial_text
    tuning = text.load(str(tmp_path), tutorial_dir, "*.rst.txt", vocab_file=str(out / "vocab.txt"),
                       seq_length=20, heldout_fraction=0.15, seed=3, evaluate_on="validation")
    assert "11 training / 3 held-out (validation) documents" in tuning.source
    test_windows = {w.tobytes() for w in data.x_test}
    assert not test_windows & {w.tobytes() for w in tuning.x_train}
    assert not test_windows & {w.tobytes() for w in tuning.x_test}
    assert 0 < len(tuning.x_train) + len(tuning.x_test) <= len(data.x_train)


@pytest.mark.parametrize("kwargs, message", [
    ({"seq_length": 1}, "--seq_length must be an integer >= 2"),
    ({"heldout_fraction": 0.0}, r"--heldout_fraction must be in \(0, 0.5\]"),
    ({"vocab_size": 50}, "--vocab_size must be >= 100"),
    ({"seq_length": 10 ** 7}, "fills no window"),
    ({"evaluate_on": "train"}, "--evaluate_on must be test or validation"),
])
def test_load_names_the_bad_flag(tutorial_dir, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        text.load(str(tmp_path), tutorial_dir, "*.rst.txt", **dict({"vocab_size": 300}, **kwargs))


def test_language_model_shapes_parameters_and_seeded_weights():
    model = language_model.build_model(300, seed=1, embedding_dim=16, units=32)
    ids = np.random.default_rng(1).integers(0, 300, size=(3, 7)).astype(np.int32)
    assert model(ids).shape == (3, 7, 300)
    assert model.count_params() == 300 * 16 + 4 * 32 * (16 + 32 + 1) + 32 * 300 + 300
    again = language_model.build_model(300, seed=1, embedding_dim=16, units=32)
    other = language_model.build_model(300, seed=2, embedding_dim=16, units=32)
    np.testing.assert_array_equal(model(ids), again(ids))
    assert not np.allclose(model(ids), other(ids))


def test_evaluate_averages_over_every_time_steps_label_and_traces_once():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(5, 4, 6)).astype(np.float32)  # the "model" returns x as logits
    y = rng.integers(0, 6, size=(5, 4)).astype(np.int32)
    traces = []

    def model(v, training=False):
        traces.append(v.shape)  # Python runs only while tracing
        return v

    evaluate = make_evaluate(model, batch_size=2)
    accuracy, loss = evaluate(x, y)
    traced = len(traces)
    assert evaluate(x, y) == (accuracy, loss) and len(traces) == traced  # no retrace next epoch
    logits = x.astype(np.float64)
    log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -np.take_along_axis(log_softmax, y[..., None], -1).mean()
    assert loss == pytest.approx(expected, rel=1e-5)  # float32 logits; 1e-5 relative
    assert accuracy == pytest.approx(np.mean(x.argmax(-1) == y), abs=0)


def test_text_task_defaults_and_checks(tmp_path):
    fv = flags.FlagValues()
    study_flags.define_flags(fv)
    legw_main.define_flags(fv)
    fv(["prog", "--task=text", "--epochs=3"])
    legw_main.apply_task_defaults(fv)
    # The command line wins over the task's defaults; the rest are the text task's.
    assert fv.model == "lstm_lm" and fv.epochs == 3 and fv.base_warmup_epochs == 0.0625
    assert fv.output_dir == legw_main.TASK_DEFAULTS["text"]["output_dir"]
    config = study_flags.config_from_flags(fv)
    assert config.batch_sizes == (128, 1024, 8192) and config.base_batch_size == 128
    with pytest.raises(study.FlagError, match="--validation_examples: the text task"):
        legw_main.text_task(study.StudyConfig(validation_examples=100), fv)
    rows = flags.FlagValues()
    study_flags.define_flags(rows)
    legw_main.define_flags(rows)
    rows(["prog"])
    legw_main.apply_task_defaults(rows)
    assert (rows.model, rows.epochs, rows.batch_sizes) == ("lstm", 30, ["128", "512", "2048",
                                                                       "8192"])


@pytest.mark.slow
def test_text_study_trains_the_language_model_under_each_rule(tutorial_text, tmp_path):
    data, _ = tutorial_text
    fv = flags.FlagValues()
    study_flags.define_flags(fv)
    legw_main.define_flags(fv)
    fv(["prog", "--task=text", "--embedding_dim=32", "--units=64"])
    config = study.StudyConfig(optimizers=("lamb",), batch_sizes=(16, 64), base_batch_size=16,
                               epochs=2, model="lstm_lm", base_warmup_epochs=0.25,
                               lamb_learning_rate=0.05, output_dir=str(tmp_path))
    out = io.StringIO()
    task = legw_main.text_task(config, fv, dataset=data)
    rows = legw_main.execute(config, ("legw", "none"), task, progress=False, out=out)
    with open(tmp_path / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert [(r["rule"], r["global_batch_size"]) for r in table] == [
        ("legw", "16"), ("legw", "64"), ("none", "16"), ("none", "64")]
    assert (tmp_path / "perplexity_vs_batch.png").stat().st_size > 10000
    # Saved runs are reused only by a study of the same model: another LSTM width reruns all.
    same = legw_main.settings(config, data.source, task.settings)
    wider = legw_main.settings(config, data.source, dict(task.settings, units=128))
    assert len(legw_main.finished_runs(str(tmp_path), same)) == 4
    assert legw_main.finished_runs(str(tmp_path), wider) == []
    assert "perplexity" in out.getvalue()
    for r in rows:
        # Learned something: below the uniform guess (the vocabulary size, 600); measured 99
        # at batch 16 and 204 at batch 64 (58 steps) under LEGW.
        assert r["test_perplexity"] == pytest.approx(math.exp(r["test_loss"]))
        assert r["test_perplexity"] < data.num_classes / 2
        assert 0.05 < r["test_accuracy"] < 0.9
    base = rows[0]
    assert base["test_perplexity"] < data.num_classes / 4
    # The target is the last logged epoch (loss to 4 decimals): the final value within 1e-3.
    assert base["target"] == pytest.approx(base["test_perplexity"], rel=1e-3)
    assert base["epochs_to_base"] == 2
