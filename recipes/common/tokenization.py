"""WordPiece vocabulary and tokenizer, through Hugging Face ``tokenizers`` (a maintained library).

BERT's special tokens and their ids: ``[PAD]`` 0, ``[UNK]`` 1, ``[CLS]`` 2, ``[SEP]`` 3,
``[MASK]`` 4 in a vocabulary we build; in a loaded ``vocab.txt`` (Google's has ``[PAD]`` 0,
``[UNK]`` 100, ``[CLS]`` 101, ``[SEP]`` 102, ``[MASK]`` 103) they are looked up.
"""

import os

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _library():
    try:
        import tokenizers
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "The BERT recipe builds WordPiece vocabularies with Hugging Face `tokenizers`: "
            "pip install 'tf-lamb[recipes]' (or pip install tokenizers)."
        ) from error
    return tokenizers


class WordPiece:
    """A BERT WordPiece tokenizer: text -> word pieces -> ids.

    Args:
        vocab_file: path of a ``vocab.txt`` (one token per line; the line number is its id).
        lowercase: bool, lower-case and strip accents first (BERT "uncased").

    Raises:
        FileNotFoundError: ``vocab_file`` does not exist.
        ValueError: the vocabulary lacks one of :data:`SPECIAL_TOKENS`.
    """

    def __init__(self, vocab_file, lowercase=True):
        if not os.path.isfile(vocab_file):
            raise FileNotFoundError(f"--vocab_file: no such file: {vocab_file}")
        self.vocab_file = vocab_file
        self.lowercase = lowercase
        with open(vocab_file, encoding="utf-8") as f:
            self.vocab = [line.rstrip("\n") for line in f]
        index = {token: i for i, token in enumerate(self.vocab)}
        missing = [t for t in SPECIAL_TOKENS if t not in index]
        if missing:
            raise ValueError(f"--vocab_file {vocab_file} lacks the special tokens {missing}")
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (
            index[t] for t in SPECIAL_TOKENS
        )
        self._tokenizer = _library().BertWordPieceTokenizer(vocab_file, lowercase=lowercase)

    @property
    def vocab_size(self):
        return len(self.vocab)

    def tokenize(self, sentences):
        """Word-piece ids of each sentence, without special tokens.

        Args:
            sentences: list of str.

        Returns:
            A list of lists of int ids, one per sentence; ``[UNK]`` for unknown words.
        """
        encodings = self._tokenizer.encode_batch(list(sentences), add_special_tokens=False)
        return [encoding.ids for encoding in encodings]

    def is_continuation(self, token_id):
        """Whether ``token_id`` continues a word (a ``##`` piece): for whole-word masking."""
        return self.vocab[token_id].startswith("##")


def build_vocab(documents, vocab_size, output_file, lowercase=True, min_frequency=2):
    """Trains a WordPiece vocabulary on ``documents`` and writes it as ``vocab.txt``.

    Args:
        documents: list of documents, each a list of sentences.
        vocab_size: int >= 100, the most tokens (special tokens and single characters
            included). BERT uses 30,522; a small corpus needs fewer.
        output_file: path of the ``vocab.txt`` to write (its directory is created).
        lowercase: bool, an uncased vocabulary.
        min_frequency: int, the fewest occurrences for a merged piece.

    Returns:
        A :class:`WordPiece` over the written vocabulary: :data:`SPECIAL_TOKENS` first (ids 0
        to 4), then the learned pieces in sorted order. Which pieces are learned can still
        differ between builds where pairs tie in frequency (huggingface/tokenizers#1794).

    Raises:
        ValueError: ``vocab_size < 100``.
    """
    if vocab_size < 100:
        raise ValueError(f"--vocab_size must be >= 100. Received: vocab_size={vocab_size}")
    tokenizer = _library().BertWordPieceTokenizer(lowercase=lowercase)
    tokenizer.train_from_iterator(
        (sentence for document in documents for sentence in document),
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
    )
    directory = os.path.dirname(os.path.abspath(output_file))
    os.makedirs(directory, exist_ok=True)
    # The trainer numbers its pieces in an order that changes from process to process
    # (huggingface/tokenizers#1794); sorted, the same pieces get the same ids in every build.
    tokens = SPECIAL_TOKENS + sorted(set(tokenizer.get_vocab()) - set(SPECIAL_TOKENS))
    temporary = output_file + ".tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        f.writelines(token + "\n" for token in tokens)
    os.replace(temporary, output_file)
    return WordPiece(output_file, lowercase=lowercase)
