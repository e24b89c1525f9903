r"""Text -> WordPiece vocabulary -> sharded BERT pre-training examples, for each sequence length.

    python -m recipes.bert.create_pretraining_data --output_dir=/tmp/bert_data
    python -m recipes.bert.create_pretraining_data --input_files=wiki.txt \
        --vocab_file=vocab.txt --max_seq_lengths=128,512 --max_predictions_per_seq=20,80

Writes ``{output_dir}/vocab.txt`` (built, or a copy of ``--vocab_file``), and per sequence
length ``{output_dir}/seq{L}/{train,heldout}-*.tfrecord`` with ``metadata.json`` (counts and
settings); with ``--output_format=npy`` the same examples as NumPy shards ``*.npy``
(:mod:`recipes.common.array_shards`), written without TensorFlow, for the JAX backend.
Held-out documents are whole documents set aside before any pair is made, so no held-out
sentence is seen in training. The default input is the Python documentation from
Debian's ``python3.11-doc`` (recipes/README.md, "Data").

Reproducibility: from the same text, seed and ``--vocab_file`` the records are the same bytes.
A vocabulary trained here is not: Hugging Face's WordPiece trainer breaks ties between equally
frequent pairs in hash-map order, which changes from process to process
(huggingface/tokenizers#1794). Its pieces are written sorted, so builds that learn the same
pieces number them alike (the LSTM's 2,048 did, twice), but two builds of this corpus's 8,192
differed in 7 pieces, which tokenized enough text differently to give 85,700 and 83,300
training examples (other builds: 83,194 and 83,563). Keep the ``vocab.txt`` of a build and
pass it as ``--vocab_file`` to rebuild the same data; ``metadata.json`` records its SHA-256.
The BERT miniature pins its vocabulary this way (``docs/bert_miniature/vocab.txt``).
"""

import hashlib
import importlib.util
import json
import os
import shutil

from absl import flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# This program uses no Keras, but the recipes' shared modules import it, and Keras' default
# backend is TensorFlow: where TensorFlow is not installed (a JAX machine writing NumPy
# shards), name a backend that is, before Keras is imported.
if "KERAS_BACKEND" not in os.environ and importlib.util.find_spec("tensorflow") is None:
    os.environ["KERAS_BACKEND"] = next(
        (name for name in ("jax", "torch") if importlib.util.find_spec(name)), "tensorflow")

from ..common import corpus, driver, tokenization  # noqa: E402
from ..common import array_shards  # noqa: E402
from . import features, instances  # noqa: E402

FLAGS = flags.FLAGS


def define_flags(fv=FLAGS):
    """Defines this program's flags on ``fv`` (tests pass a fresh ``flags.FlagValues()``)."""
    flags.DEFINE_list(
        "input_files", [], "Text files, one sentence per line, a blank line between documents "
        "(google-research/bert's format). Overrides --input_dir.", flag_values=fv)
    flags.DEFINE_string(
        "input_dir", corpus.DEFAULT_CORPUS, "A directory of documents, one per file matching "
        "--input_pattern; reStructuredText markup is removed. Default: the Python 3.11 "
        "documentation sources (apt-get install python3.11-doc).", flag_values=fv)
    flags.DEFINE_string("input_pattern", "**/*.txt", "Glob below --input_dir.", flag_values=fv)
    flags.DEFINE_string("output_dir", None, "Where to write vocab.txt and seq*/.", flag_values=fv)
    flags.DEFINE_string(
        "vocab_file", None, "An existing vocab.txt; when unset a vocabulary of --vocab_size is "
        "trained on the training documents (not reproducible run to run: pass the vocab.txt "
        "of an earlier build here to rebuild the same records).", flag_values=fv)
    flags.DEFINE_integer(
        "vocab_size", 8192, "Size of a trained vocabulary. BERT's is 30,522; 8,192 suits the "
        "default 0.6M-word corpus.", flag_values=fv)
    flags.DEFINE_boolean("lowercase", True, "Uncased vocabulary and input.", flag_values=fv)
    flags.DEFINE_list(
        "max_seq_lengths", ["128", "512"], "Sequence lengths to write: 128 for phase 1, 512 for "
        "phase 2 (LAMB paper, Sec. 4).", flag_values=fv)
    flags.DEFINE_list(
        "max_predictions_per_seq", ["20", "80"], "Masked positions per sequence, one per "
        "length (google-research/bert: 20 for 128, 80 for 512).", flag_values=fv)
    flags.DEFINE_float("masked_lm_prob", 0.15, "Share of tokens masked (BERT).", flag_values=fv)
    flags.DEFINE_float(
        "short_seq_prob", 0.1, "Chance of a shorter target length (BERT).", flag_values=fv)
    flags.DEFINE_integer(
        "duplication_factor", 10, "Passes over the corpus with different masks (BERT: 10).",
        flag_values=fv)
    flags.DEFINE_boolean("whole_word_masking", False, "Mask whole words.", flag_values=fv)
    flags.DEFINE_integer("num_shards", 8, "Training shards per sequence length.", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_float(
        "heldout_fraction", 0.05, "Share of documents set aside for held-out evaluation "
        "(0 for none).", flag_values=fv)
    flags.DEFINE_integer("seed", 12345, "Seed of every random choice.", flag_values=fv)
    flags.DEFINE_enum(
        "output_format", "tfrecord", ("tfrecord", "npy"), "tfrecord: tf.train.Example records "
        "(Google BERT's format; needs TensorFlow); npy: NumPy shards of the same examples, "
        "which the recipe reads with grain on the JAX backend, no TensorFlow needed.",
        flag_values=fv)


def create(fv=FLAGS, log=print):
    """Runs the program with the flag values ``fv``; returns ``{seq_length: metadata}``."""
    if not fv.output_dir:
        raise ValueError("--output_dir is required.")
    lengths = [int(x) for x in fv.max_seq_lengths]
    predictions = [int(x) for x in fv.max_predictions_per_seq]
    if len(lengths) != len(predictions):
        raise ValueError(
            f"--max_predictions_per_seq needs one value per --max_seq_lengths ({len(lengths)}). "
            f"Received: {fv.max_predictions_per_seq}"
        )
    options = [
        instances.InstanceOptions(
            max_seq_length=length,
            max_predictions_per_seq=count,
            masked_lm_prob=fv.masked_lm_prob,
            short_seq_prob=fv.short_seq_prob,
            duplication_factor=fv.duplication_factor,
            whole_word_masking=fv.whole_word_masking,
        )
        for length, count in zip(lengths, predictions)
    ]  # checks every value before the slow work starts
    if fv.input_files:
        documents = corpus.read_sentence_files(fv.input_files)
        source = ",".join(fv.input_files)
    else:
        documents = corpus.read_document_dir(fv.input_dir, fv.input_pattern)
        source = os.path.join(fv.input_dir, fv.input_pattern)
    train_docs, heldout_docs = corpus.split_documents(documents, fv.heldout_fraction, fv.seed)
    log(f"{len(documents)} documents from {source}: {len(train_docs)} train, "
        f"{len(heldout_docs)} held out")

    os.makedirs(fv.output_dir, exist_ok=True)
    vocab_path = os.path.join(fv.output_dir, "vocab.txt")
    if fv.vocab_file:
        tokenizer = tokenization.WordPiece(fv.vocab_file, lowercase=fv.lowercase)
        if os.path.abspath(fv.vocab_file) != os.path.abspath(vocab_path):
            shutil.copyfile(fv.vocab_file, vocab_path)
    else:
        tokenizer = tokenization.build_vocab(
            train_docs, fv.vocab_size, vocab_path, lowercase=fv.lowercase
        )
    with open(vocab_path, "rb") as f:
        vocab_digest = hashlib.sha256(f.read()).hexdigest()
    log(f"vocabulary: {tokenizer.vocab_size} tokens -> {vocab_path} (sha256 {vocab_digest[:12]})")
    if not fv.vocab_file:
        log("a trained vocabulary differs from build to build (huggingface/tokenizers#1794): "
            f"pass --vocab_file={vocab_path} to rebuild these records exactly")

    tokenized = {
        split: [tokenizer.tokenize(doc) for doc in docs]
        for split, docs in (("train", train_docs), ("heldout", heldout_docs)) if docs
    }
    results = {}
    for option in options:
        directory = os.path.join(fv.output_dir, f"seq{option.max_seq_length}")
        metadata = {
            "source": source,
            "vocab_file": vocab_path,
            "vocab_size": tokenizer.vocab_size,
            "vocab_sha256": vocab_digest,
            "lowercase": fv.lowercase,
            "seed": fv.seed,
            "format": fv.output_format,
            **option.__dict__,
        }
        for split, docs in tokenized.items():
            made = instances.create_instances(docs, tokenizer, option, seed=fv.seed)
            shards = fv.num_shards if split == "train" else 1
            paths = _write(fv.output_format, made, os.path.join(directory, split), shards,
                           option.max_seq_length, option.max_predictions_per_seq)
            metadata[f"{split}_examples"] = len(made)
            metadata[f"{split}_files"] = [os.path.basename(p) for p in paths]
            log(f"seq {option.max_seq_length}: {len(made)} {split} examples in {len(paths)} files")
        with open(os.path.join(directory, "metadata.json"), "w") as f:
            json.dump(metadata, f, indent=2)
        results[option.max_seq_length] = metadata
    return results


def _write(output_format, made, output_prefix, shards, max_seq_length, max_predictions_per_seq):
    """Writes one split's instances in ``output_format``; returns the paths."""
    if output_format == "npy":
        return array_shards.write_shards(
            features.to_records(made, max_seq_length, max_predictions_per_seq), output_prefix,
            shards)
    from . import records  # TensorFlow

    return records.write_shards(made, output_prefix, shards, max_seq_length,
                                max_predictions_per_seq)


def run():
    """Console-script entry point."""
    driver.command_line(define_flags, create)


if __name__ == "__main__":
    run()
