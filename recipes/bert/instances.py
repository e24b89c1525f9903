"""Pre-training examples in Google BERT's format: sentence pairs with next-sentence labels and
masked-LM targets (Devlin et al. 2019, Sec. 3.1 and Appendix A.1; the procedure of
google-research/bert ``create_pretraining_data.py``, re-implemented).

For each document, repeated ``duplication_factor`` times with fresh random choices:

1. a target length: ``max_seq_length - 3`` tokens, or with probability ``short_seq_prob`` a
   random length in [2, that] (so the model also sees short sequences);
2. whole sentences are gathered until the target is reached; a random split point makes
   segment A; segment B is the rest (``next_sentence_label`` 0, "is next") or, with
   probability 1/2, text from a random other document (label 1, "random next"), whose unused
   sentences go back to be used later;
3. the pair is truncated to fit, one token at a time from the longer segment, at its front or
   back at random;
4. ``[CLS] A [SEP] B [SEP]``; then ``masked_lm_prob`` of the tokens (at most
   ``max_predictions_per_seq``, at least 1; never ``[CLS]``/``[SEP]``) are chosen, whole words
   at once when ``whole_word_masking``; each chosen token becomes ``[MASK]`` with probability
   0.8, stays itself with 0.1, and becomes a random vocabulary token with 0.1 (the 80/10/10
   rule).
"""

import dataclasses
import random


@dataclasses.dataclass(frozen=True)
class InstanceOptions:
    """How sequences are made (google-research/bert's flags and defaults).

    Attributes:
        max_seq_length: int, tokens per sequence after padding (128 phase 1, 512 phase 2).
        max_predictions_per_seq: int, masked positions per sequence (20 for 128, 80 for 512).
        masked_lm_prob: float in (0, 1], the share of tokens masked (0.15).
        short_seq_prob: float in [0, 1], the chance of a shorter target length (0.1).
        duplication_factor: int >= 1, passes over the corpus with different masks (10).
        whole_word_masking: bool, mask all pieces of a word together.
    """

    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    short_seq_prob: float = 0.1
    duplication_factor: int = 10
    whole_word_masking: bool = False

    def __post_init__(self):
        checks = [
            ("max_seq_length", self.max_seq_length >= 8, ">= 8"),
            ("max_predictions_per_seq", self.max_predictions_per_seq >= 1, ">= 1"),
            ("masked_lm_prob", 0.0 < self.masked_lm_prob <= 1.0, "in (0, 1]"),
            ("short_seq_prob", 0.0 <= self.short_seq_prob <= 1.0, "in [0, 1]"),
            ("duplication_factor", self.duplication_factor >= 1, ">= 1"),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(
                    f"--{name} must be {allowed}. Received: {name}={getattr(self, name)!r}"
                )


@dataclasses.dataclass
class Instance:
    """One sequence before padding: ids, segment ids, masked positions and their true ids."""

    input_ids: list
    segment_ids: list
    masked_lm_positions: list
    masked_lm_ids: list
    next_sentence_label: int


def create_instances(documents, tokenizer, options, seed):
    """All training instances of a tokenized corpus, shuffled.

    Args:
        documents: list of documents, each a list of sentences, each a list of token ids
            (no special tokens).
        tokenizer: a :class:`~recipes.common.tokenization.WordPiece` (special ids, vocabulary
            size, word continuations).
        options: :class:`InstanceOptions`.
        seed: int; the same seed gives the same instances.

    Returns:
        A list of :class:`Instance`.

    Raises:
        ValueError: fewer than two non-empty documents (random-next pairs need another
            document).
    """
    documents = [[s for s in doc if s] for doc in documents]
    documents = [doc for doc in documents if doc]
    if len(documents) < 2:
        raise ValueError("The corpus needs at least two non-empty documents.")
    rng = random.Random(seed)
    instances = []
    for _ in range(options.duplication_factor):
        for index in range(len(documents)):
            instances.extend(_from_document(documents, index, tokenizer, options, rng))
    rng.shuffle(instances)
    return instances


def _from_document(documents, index, tokenizer, options, rng):
    document = documents[index]
    max_tokens = options.max_seq_length - 3  # [CLS], [SEP], [SEP]
    target = max_tokens
    if rng.random() < options.short_seq_prob:
        target = rng.randint(2, max_tokens)
    instances, chunk, chunk_length, i = [], [], 0, 0
    while i < len(document):
        chunk.append(document[i])
        chunk_length += len(document[i])
        if i == len(document) - 1 or chunk_length >= target:
            a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
            tokens_a = [t for sentence in chunk[:a_end] for t in sentence]
            if len(chunk) == 1 or rng.random() < 0.5:
                label = 1
                tokens_b = _random_segment(documents, index, target - len(tokens_a), rng)
                i -= len(chunk) - a_end  # the unused sentences are used next
            else:
                label = 0
                tokens_b = [t for sentence in chunk[a_end:] for t in sentence]
            _truncate_pair(tokens_a, tokens_b, max_tokens, rng)
            if tokens_a and tokens_b:
                instances.append(_masked(tokens_a, tokens_b, label, tokenizer, options, rng))
            chunk, chunk_length = [], 0
        i += 1
    return instances


def _random_segment(documents, index, length, rng):
    """At least ``length`` tokens (whole sentences) from a random document other than ``index``."""
    other = index
    while other == index:
        other = rng.randrange(len(documents))
    document = documents[other]
    tokens = []
    for sentence in document[rng.randrange(len(document)) :]:
        tokens.extend(sentence)
        if len(tokens) >= length:
            break
    return tokens


def _truncate_pair(tokens_a, tokens_b, max_tokens, rng):
    while len(tokens_a) + len(tokens_b) > max_tokens:
        longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()


def _masked(tokens_a, tokens_b, label, tokenizer, options, rng):
    ids = [tokenizer.cls_id, *tokens_a, tokenizer.sep_id, *tokens_b, tokenizer.sep_id]
    segments = [0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1)
    special = {0, len(tokens_a) + 1, len(ids) - 1}
    words = []  # candidate positions, grouped by word for whole-word masking
    for position in range(len(ids)):
        if position in special:
            continue
        if (
            options.whole_word_masking
            and position - 1 not in special  # a segment cut mid-word starts a new word
            and tokenizer.is_continuation(ids[position])
        ):
            words[-1].append(position)
        else:
            words.append([position])
    rng.shuffle(words)
    budget = min(
        options.max_predictions_per_seq, max(1, round(len(ids) * options.masked_lm_prob))
    )
    chosen = []
    for word in words:
        if len(chosen) + len(word) > budget:
            continue
        chosen.extend(word)
        if len(chosen) == budget:
            break
    chosen.sort()
    original = [ids[p] for p in chosen]
    for position in chosen:
        draw = rng.random()
        if draw < 0.8:
            ids[position] = tokenizer.mask_id
        elif draw >= 0.9:
            ids[position] = rng.randrange(tokenizer.vocab_size)
        # else (0.1): the token stays itself
    return Instance(ids, segments, chosen, original, label)
