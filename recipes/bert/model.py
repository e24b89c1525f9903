"""A BERT encoder with masked-LM and next-sentence heads, in Keras 3 layers, built from a size.

Devlin et al. 2019 (Sec. 3, Appendix A): token + position + segment embeddings, layer norm,
``num_layers`` post-norm transformer blocks (self-attention, GELU feed-forward of 4x the hidden
size), a tanh pooler on ``[CLS]``; the masked-LM head is a dense + GELU + layer norm transform
and an output layer tied to the token embeddings, with its own bias; the next-sentence head is
a two-way classifier on the pooled output. Sizes are Google's published BERT configurations
(``SIZES``; the miniatures of Turc et al. 2019 and BERT-base/large). No pretrained download.

Variable paths carry ``layer_norm`` and ``bias`` where BERT's exclusions expect them, e.g.
``bert/transformer_3/attention_layer_norm/gamma``, ``bert/mlm_output/bias``.
"""

import dataclasses

import keras
from keras import ops

#: (layers, hidden size): google-research/bert README (BERT-Tiny ... BERT-Large). Heads are
#: hidden / 64 and the feed-forward size 4 x hidden, as there.
SIZES = {
    "tiny": (2, 128),
    "mini": (4, 256),
    "small": (4, 512),
    "medium": (8, 512),
    "base": (12, 768),
    "large": (24, 1024),
}


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """The encoder's shape (google-research/bert ``bert_config.json`` fields).

    Attributes:
        vocab_size: int, rows of the token embedding; must cover the data's vocabulary.
        num_layers, hidden_size, num_heads, intermediate_size: the transformer's shape.
        max_position_embeddings: int, the longest sequence (512 for both phases, so phase 2
            continues phase 1's model).
        type_vocab_size: int, segment ids (2).
        dropout_rate: float, hidden and attention dropout (0.1).
        initializer_range: float, stddev of the truncated-normal initializer (0.02).
    """

    vocab_size: int
    num_layers: int = 2
    hidden_size: int = 128
    num_heads: int = 2
    intermediate_size: int = 512
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    dropout_rate: float = 0.1
    initializer_range: float = 0.02

    @classmethod
    def from_size(cls, size, vocab_size, **overrides):
        """The configuration named ``size`` (a key of :data:`SIZES`).

        Raises:
            ValueError: an unknown size (the message lists the known ones).
        """
        if size not in SIZES:
            raise ValueError(f"--model_size must be one of {sorted(SIZES)}. Received: {size!r}")
        layers, hidden = SIZES[size]
        return cls(
            vocab_size=vocab_size,
            num_layers=layers,
            hidden_size=hidden,
            num_heads=hidden // 64,
            intermediate_size=4 * hidden,
            **overrides,
        )


def _initializer(config):
    return keras.initializers.TruncatedNormal(stddev=config.initializer_range)


class TransformerBlock(keras.layers.Layer):
    """Post-norm transformer block: ``x = LN(x + Attn(x)); x = LN(x + FFN(x))``.

    Call args: ``x`` float32 ``[batch, seq, hidden]``; ``attention_mask`` bool
    ``[batch, seq, seq]``; ``training`` bool. Returns the same shape as ``x``.
    """

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        init = _initializer(config)
        self.attention = keras.layers.MultiHeadAttention(
            config.num_heads,
            config.hidden_size // config.num_heads,
            dropout=config.dropout_rate,
            kernel_initializer=init,
            name="attention",
        )
        self.attention_layer_norm = keras.layers.LayerNormalization(
            epsilon=1e-12, name="attention_layer_norm"
        )
        self.intermediate = keras.layers.Dense(
            config.intermediate_size, activation="gelu", kernel_initializer=init,
            name="intermediate",
        )
        self.output_dense = keras.layers.Dense(
            config.hidden_size, kernel_initializer=init, name="output"
        )
        self.output_layer_norm = keras.layers.LayerNormalization(
            epsilon=1e-12, name="output_layer_norm"
        )
        self.dropout = keras.layers.Dropout(config.dropout_rate)

    def call(self, x, attention_mask, training=False):
        attended = self.attention(x, x, attention_mask=attention_mask, training=training)
        x = self.attention_layer_norm(x + self.dropout(attended, training=training))
        y = self.output_dense(self.intermediate(x))
        return self.output_layer_norm(x + self.dropout(y, training=training))


class BertPretrainer(keras.Model):
    """BERT with its two pre-training heads.

    Call args: a dict of int32 tensors ``input_ids``, ``input_mask``, ``segment_ids``
    (``[batch, seq]``) and ``masked_lm_positions`` (``[batch, predictions]``), as
    :mod:`recipes.bert.records` reads them; ``training`` bool.

    Returns:
        A dict: ``mlm_logits`` float32 ``[batch, predictions, vocab_size]`` at the masked
        positions, ``nsp_logits`` float32 ``[batch, 2]`` (index 1: "random next").
    """

    def __init__(self, config, name="bert", **kwargs):
        super().__init__(name=name, **kwargs)
        self.config = config
        init = _initializer(config)
        self.word_embeddings = keras.layers.Embedding(
            config.vocab_size, config.hidden_size, embeddings_initializer=init,
            name="word_embeddings",
        )
        self.position_embeddings = keras.layers.Embedding(
            config.max_position_embeddings, config.hidden_size, embeddings_initializer=init,
            name="position_embeddings",
        )
        self.segment_embeddings = keras.layers.Embedding(
            config.type_vocab_size, config.hidden_size, embeddings_initializer=init,
            name="segment_embeddings",
        )
        self.embeddings_layer_norm = keras.layers.LayerNormalization(
            epsilon=1e-12, name="embeddings_layer_norm"
        )
        self.dropout = keras.layers.Dropout(config.dropout_rate)
        # One attribute per block: tf.train.Checkpoint tracks attributes, not a Keras list.
        self.num_blocks = config.num_layers
        for i in range(config.num_layers):
            setattr(self, f"transformer_{i}", TransformerBlock(config, name=f"transformer_{i}"))
        self.pooler = keras.layers.Dense(
            config.hidden_size, activation="tanh", kernel_initializer=init, name="pooler"
        )
        self.mlm_transform = keras.layers.Dense(
            config.hidden_size, activation="gelu", kernel_initializer=init, name="mlm_transform"
        )
        self.mlm_layer_norm = keras.layers.LayerNormalization(
            epsilon=1e-12, name="mlm_layer_norm"
        )
        self.mlm_output = _OutputBias(config.vocab_size, name="mlm_output")
        self.nsp = keras.layers.Dense(2, kernel_initializer=init, name="nsp")

    def call(self, inputs, training=False):
        ids, mask = inputs["input_ids"], inputs["input_mask"]
        length = ops.shape(ids)[1]
        x = (
            self.word_embeddings(ids)
            + self.position_embeddings(ops.arange(length))[None]
            + self.segment_embeddings(inputs["segment_ids"])
        )
        x = self.dropout(self.embeddings_layer_norm(x), training=training)
        keep = ops.cast(mask, "bool")
        attention_mask = ops.logical_and(keep[:, None, :], keep[:, :, None])
        for i in range(self.num_blocks):
            x = getattr(self, f"transformer_{i}")(x, attention_mask=attention_mask, training=training)
        pooled = self.pooler(x[:, 0])
        positions = ops.cast(inputs["masked_lm_positions"], "int32")
        at_masks = ops.take_along_axis(x, positions[:, :, None], axis=1)
        h = self.mlm_layer_norm(self.mlm_transform(at_masks))
        logits = ops.matmul(h, ops.transpose(self.word_embeddings.embeddings))
        return {"mlm_logits": self.mlm_output(logits), "nsp_logits": self.nsp(pooled)}


class _OutputBias(keras.layers.Layer):
    """Adds a learned per-token bias to the tied output layer's logits (BERT's ``output_bias``)."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def call(self, logits):
        return logits + self.bias


def build(config, seq_length=128, predictions=20):
    """A :class:`BertPretrainer` with its variables created, by one symbolic call (shapes
    only: nothing is computed, so no step runs eagerly on variables laid out across devices
    and hosts, where each eager op is a program of its own with collectives)."""
    model = BertPretrainer(config)
    model({
        "input_ids": keras.Input((seq_length,), batch_size=1, dtype="int32"),
        "input_mask": keras.Input((seq_length,), batch_size=1, dtype="int32"),
        "segment_ids": keras.Input((seq_length,), batch_size=1, dtype="int32"),
        "masked_lm_positions": keras.Input((predictions,), batch_size=1, dtype="int32"),
    })
    return model
