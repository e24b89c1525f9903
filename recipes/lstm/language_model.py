"""A word-piece LSTM language model: embedding -> one LSTM layer -> a softmax over the vocabulary.

The shape of Zaremba et al.'s (2014) Penn Treebank "small" model, which the LEGW paper (You et
al. 2019, arXiv 1901.08256, Section 5) trains at growing batch sizes, cut to one layer and no
dropout, and 128 units (the width of the study's MNIST-LSTM), so that a sweep trains on 2 CPU
cores (an epoch of the Python documentation, 0.95M tokens, in 13-20 s): with the defaults (2,048
word pieces, 64-dimensional embeddings) it has 494,080 parameters, most of them in the output
layer. No dropout, as in the batch-scaling study: the study is about the optimizer.
"""

import keras

#: Defaults (see the module docstring).
EMBEDDING_DIM = 64
UNITS = 128


def build_model(vocab_size, seed=0, embedding_dim=EMBEDDING_DIM, units=UNITS):
    """Builds the language model, returning next-token logits.

    Args:
        vocab_size: int, the word-piece vocabulary (input ids and output classes).
        seed: int; the initial weights depend on it and on nothing else.
        embedding_dim: int, width of the token embedding.
        units: int, LSTM units.

    Returns:
        A ``keras.Model`` mapping int32 ids ``(batch, seq_length)`` to float32 logits
        ``(batch, seq_length, vocab_size)``; any ``seq_length``.
    """
    inputs = keras.Input((None,), dtype="int32", name="token_ids")
    h = keras.layers.Embedding(
        vocab_size, embedding_dim, name="embedding",
        embeddings_initializer=keras.initializers.RandomUniform(-0.1, 0.1, seed=seed * 1000),
    )(inputs)
    h = keras.layers.LSTM(
        units, return_sequences=True, name="lstm",
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed * 1000 + 1),
        recurrent_initializer=keras.initializers.Orthogonal(seed=seed * 1000 + 2),
    )(h)
    logits = keras.layers.Dense(
        vocab_size, name="logits",
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed * 1000 + 3),
    )(h)
    return keras.Model(inputs, logits, name="lstm_language_model")
