"""Language-model data: documents -> WordPiece ids -> fixed windows of next-token prediction.

The corpus is read as the BERT recipe reads it (``recipes.common.corpus``: by default the Python
documentation's reStructuredText sources from Debian's ``python3.11-doc``, see
``recipes/README.md``, "Data"; or the user's files in BERT's one-sentence-per-line format).
Whole documents are held out before the vocabulary is built, so no held-out text shapes the
vocabulary or the training windows.
For tuning, ``evaluate_on="validation"`` sets the test documents aside unused and holds out as
many training documents again, so rates are never chosen on the text the results report.

Each split becomes one token stream (every sentence's word pieces followed by ``[SEP]`` as the
end-of-sentence token, documents in order) cut into non-overlapping windows of ``seq_length``
tokens; a window's targets are the same stream shifted by one token (the Penn Treebank
set-up of Zaremba et al. 2014, whose LSTMs the LEGW paper scales, without the carried state:
each window starts from a zero state, so windows can be shuffled and batched at any size).
Perplexity is ``exp`` of the mean cross-entropy per target token.
"""

import collections
import os

import numpy as np

from ..common import corpus, tokenization

TextData = collections.namedtuple(
    "TextData", ["x_train", "y_train", "x_test", "y_test", "source", "num_classes"])
TextData.__doc__ = """Windows of token ids (int32, ``(windows, seq_length)``) and their
next-token targets; ``num_classes`` is the vocabulary size; ``source`` says where the text came
from. Field names match ``recipes.common.fashion_mnist.FashionMNIST``, so the batch-scaling
study's machinery runs on it unchanged."""


def windows(token_ids, seq_length):
    """Non-overlapping next-token windows of one token stream.

    Args:
        token_ids: 1-D int array, the stream.
        seq_length: int >= 1, tokens per window.

    Returns:
        ``(inputs, targets)``, int32 arrays ``(n, seq_length)`` with ``n = (len - 1) //
        seq_length``: ``targets[i, t] == token_ids[i * seq_length + t + 1]``. The tail that does
        not fill a window is dropped.
    """
    stream = np.asarray(token_ids, dtype=np.int32)
    n = (len(stream) - 1) // seq_length
    inputs = stream[: n * seq_length].reshape(n, seq_length)
    targets = stream[1 : n * seq_length + 1].reshape(n, seq_length)
    return inputs, targets


def token_stream(documents, tokenizer):
    """The word-piece ids of ``documents`` as one stream, ``[SEP]`` after every sentence."""
    ids = []
    for document in documents:
        for sentence in tokenizer.tokenize(document):
            ids.extend(sentence)
            ids.append(tokenizer.sep_id)
    return np.asarray(ids, dtype=np.int32)


def load(output_dir, input_dir=corpus.DEFAULT_CORPUS, input_pattern="**/*.rst.txt",
         input_files=(), vocab_size=2048, vocab_file="", seq_length=35, heldout_fraction=0.05,
         seed=12345, evaluate_on="test"):
    """Reads the corpus, holds out documents, builds (or loads) the vocabulary, cuts windows.

    Args:
        output_dir: where ``vocab.txt`` is written (built on the training documents only).
        input_dir, input_pattern: a directory of documents (one per file, reStructuredText
            cleaned); used when ``input_files`` is empty.
        input_files: files in BERT's format (a sentence per line, blank line between documents).
        vocab_size: int >= 100, WordPiece vocabulary size to build (special tokens included).
        vocab_file: an existing ``vocab.txt`` to use instead of building one.
        seq_length: int >= 2, tokens per window (35: Zaremba et al.'s PTB set-up).
        heldout_fraction: share of documents held out for perplexity, in (0, 0.5].
        seed: int, which documents are held out.
        evaluate_on: ``test`` (the held-out documents) or ``validation`` (as many training
            documents, the test documents unused: for tuning).

    Returns:
        A :class:`TextData`.

    Raises:
        ValueError: ``seq_length < 2``, ``heldout_fraction`` outside (0, 0.5], ``vocab_size <
            100``, an unknown ``evaluate_on``, or too little text for one window per split
            (the message names the flag).
        FileNotFoundError: a missing input (the message says how to install the default).
    """
    if not isinstance(seq_length, int) or seq_length < 2:
        raise ValueError(f"--seq_length must be an integer >= 2. Received: {seq_length}")
    if not 0.0 < heldout_fraction <= 0.5:
        raise ValueError("--heldout_fraction must be in (0, 0.5]: perplexity is measured on "
                         f"held-out documents. Received: {heldout_fraction}")
    if evaluate_on not in ("test", "validation"):
        raise ValueError(f"--evaluate_on must be test or validation. Received: {evaluate_on!r}")
    if input_files:
        documents = corpus.read_sentence_files(list(input_files))
        source = ",".join(input_files)
    else:
        documents = corpus.read_document_dir(input_dir, input_pattern, min_sentences=1)
        source = os.path.join(input_dir, input_pattern)
    train_docs, heldout_docs = corpus.split_documents(documents, heldout_fraction, seed)
    if evaluate_on == "validation":
        train_docs, heldout_docs = corpus.split_documents(
            train_docs, len(heldout_docs) / len(train_docs), seed + 1)
    if vocab_file:
        tokenizer = tokenization.WordPiece(vocab_file)
    else:
        tokenizer = tokenization.build_vocab(
            train_docs, vocab_size, os.path.join(output_dir, "vocab.txt"))
    x_train, y_train = windows(token_stream(train_docs, tokenizer), seq_length)
    x_test, y_test = windows(token_stream(heldout_docs, tokenizer), seq_length)
    if not len(x_train) or not len(x_test):
        raise ValueError(f"--seq_length={seq_length}: the text of {source} fills no window in "
                         f"the {'training' if not len(x_train) else 'held-out'} documents.")
    return TextData(
        x_train, y_train, x_test, y_test,
        f"{source}: {len(train_docs)} training / {len(heldout_docs)} held-out ({evaluate_on}) "
        "documents, "
        f"{tokenizer.vocab_size} word pieces", tokenizer.vocab_size)
