"""BERT pre-training's objective and optimizer, for every backend and without TensorFlow: the
learning-rate schedule of a phase, the optimizer with BERT's weight-decay exclusions, the
masked-LM + next-sentence task (in ``keras.ops``) and the summary of its metric sums. The
recipe (:mod:`recipes.bert.pretrain`) and the JAX benchmark (``benchmarks/bert_jax.py``) use
them.
"""

from keras import ops

from ..common import optimizers


def make_schedule(config):
    """The phase's learning-rate schedule, from 0 at step 0 (phase 2 re-warms from 0)."""
    if config.schedule == "lans":
        return optimizers.build_schedule(
            "warmup_constant_decay", peak_learning_rate=config.peak_learning_rate,
            total_steps=config.train_steps, warmup_steps=config.warmup_steps,
            constant_steps=config.constant_steps,
        )
    return optimizers.build_schedule(
        "polynomial", peak_learning_rate=config.peak_learning_rate,
        total_steps=config.train_steps, warmup_steps=config.warmup_steps,
        power=config.decay_power,
    )


#: BERT's exclusions (google-research/bert optimization.py), matched on variable paths.
EXCLUDE = ["LayerNorm", "layer_norm", "bias"]


def make_optimizer(config, variables):
    """The configuration's optimizer from the recipes' factory, with BERT's exclusions from
    weight decay. Layer-wise adaptation follows each optimizer's reference: Google's LAMB
    (tfa's rule) gives the no-decay layers a trust ratio of 1 too; the LANS authors adapt every
    layer.

    Args:
        config: a :class:`configs.PretrainConfig`.
        variables: the model's trainable variables (Keras' AdamW excludes them by identity).
    """
    return optimizers.build_optimizer(
        config.optimizer, make_schedule(config), weight_decay=config.weight_decay,
        exclude_from_weight_decay=EXCLUDE, variables=variables, beta_1=config.beta_1,
        beta_2=config.beta_2, epsilon=config.epsilon,
        global_clipnorm=config.global_clipnorm or None,
    )


def pretraining_task(model, batch, training):
    """Masked-LM + next-sentence loss of a batch, as sums over its examples.

    Each example's masked-LM loss is the mean cross-entropy over its real masked positions
    (``masked_lm_weights``); its total loss adds the next-sentence cross-entropy.

    Written in ``keras.ops``: the same task on TensorFlow and JAX.

    Returns:
        ``(loss_sum, metrics)``: float32 scalars; metrics ``mlm_correct``, ``mlm_count``,
        ``nsp_correct``, ``examples``, and the two parts of ``loss_sum``: ``mlm_loss`` and
        ``nsp_loss``.
    """
    outputs = model(batch, training=training)
    weights = ops.cast(batch["masked_lm_weights"], "float32")
    mlm_ids = ops.cast(batch["masked_lm_ids"], "int32")
    mlm_logits = ops.cast(outputs["mlm_logits"], "float32")
    mlm_loss = ops.sparse_categorical_crossentropy(mlm_ids, mlm_logits, from_logits=True)
    count = ops.sum(weights, axis=1)
    per_example_mlm = ops.sum(mlm_loss * weights, axis=1) / ops.maximum(count, 1.0)
    nsp_labels = ops.cast(batch["next_sentence_labels"][:, 0], "int32")
    nsp_logits = ops.cast(outputs["nsp_logits"], "float32")
    nsp_loss = ops.sparse_categorical_crossentropy(nsp_labels, nsp_logits, from_logits=True)
    correct = ops.cast(ops.equal(ops.cast(ops.argmax(mlm_logits, -1), "int32"), mlm_ids),
                       "float32")
    metrics = {
        "mlm_correct": ops.sum(correct * weights),
        "mlm_count": ops.sum(weights),
        "nsp_correct": ops.sum(ops.cast(
            ops.equal(ops.cast(ops.argmax(nsp_logits, -1), "int32"), nsp_labels), "float32")),
        "examples": ops.cast(ops.shape(nsp_labels)[0], "float32"),
        "mlm_loss": ops.sum(per_example_mlm),
        "nsp_loss": ops.sum(nsp_loss),
    }
    return metrics["mlm_loss"] + metrics["nsp_loss"], metrics


def summarize(sums):
    """Per-example loss (and its masked-LM and next-sentence parts) and MLM / NSP accuracy
    from :func:`pretraining_task`'s metric sums."""
    return {
        "loss": sums["loss"] / sums["examples"],
        "mlm_accuracy": sums["mlm_correct"] / sums["mlm_count"],
        "nsp_accuracy": sums["nsp_correct"] / sums["examples"],
        "mlm_loss": sums["mlm_loss"] / sums["examples"],
        "nsp_loss": sums["nsp_loss"] / sums["examples"],
    }
