"""BERT's model-parallel layout on the JAX backend (``--model_parallel``), and the memory each
device needs under it.

The devices form a mesh with a ``batch`` axis and a ``model`` axis. Along the model axis each
transformer block is split as in Megatron-LM (Shoeybi et al. 2019, Sec. 3): the query, key and
value projections by attention head and the feed-forward's first layer by column, so each device
computes its own heads and columns; the attention output and the feed-forward's second layer by
row, so one sum across the model axis completes each. The word embeddings, BERT's largest
single variable (tied to the masked-LM output), are split along the hidden axis, which any
model-axis size divides. Everything else (position and segment embeddings, layer norms, the
pooler and heads) is replicated. The optimizer's slots take their variable's layout, and XLA
inserts the collectives, so LAMB's per-layer norms are those of the whole layer.

The LAMB paper trained BERT-large on TPU v3 Pod slices (up to 1,024 chips). Each v3 chip
holds two TensorCores, and JAX sees each core as a device with 16 GiB of HBM: a slice
``v3-N`` has N devices (:data:`TPU_V3_SLICES`).
"""

import math
import re

import keras

#: Variable-path patterns (full matches) to their axes, for a mesh with a ``model`` axis.
RULES = {
    r".*/word_embeddings/embeddings": (None, "model"),
    r".*/attention/(query|key|value)/kernel": (None, "model", None),
    r".*/attention/(query|key|value)/bias": ("model", None),
    r".*/attention/attention_output/kernel": ("model", None, None),
    r".*/intermediate/kernel": (None, "model"),
    r".*/intermediate/bias": ("model",),
    r".*/transformer_\d+/output/kernel": ("model", None),
}

#: TPU v3 Pod slices: name -> JAX devices (TensorCores), each with 16 GiB of HBM.
TPU_V3_SLICES = {"v3-8": 8, "v3-32": 32, "v3-128": 128, "v3-512": 512, "v3-2048": 2048}
TPU_V3_DEVICE_BYTES = 16 * 2**30


def check(num_heads, model_parallel):
    """Checks that the attention heads split evenly across the model axis.

    Raises:
        ValueError: ``num_heads`` is not a multiple of ``model_parallel`` (the message names
            ``--model_parallel``).
    """
    if num_heads % model_parallel:
        raise ValueError(f"--model_parallel={model_parallel} must divide the model's "
                         f"{num_heads} attention heads.")


def layout_map(device_mesh):
    """A ``keras.distribution.LayoutMap`` of :data:`RULES` on ``device_mesh`` (axes ``batch``
    and ``model``)."""
    layouts = keras.distribution.LayoutMap(device_mesh)
    for pattern, axes in RULES.items():
        layouts[pattern] = axes
    return layouts


def sharded_bytes(path, shape, model_parallel, itemsize=4):
    """Bytes of one device's share of the variable at ``path`` of ``shape`` (float32 by
    default) under :data:`RULES` with ``model_parallel`` devices on the model axis."""
    size = math.prod(shape) * itemsize
    for pattern, axes in RULES.items():
        if re.fullmatch(pattern, path):
            return size // model_parallel if "model" in axes else size
    return size


def memory_per_device(variables, model_parallel, copies=4):
    """The bytes each device holds for the training state of ``variables`` (``(path, shape)``
    pairs, float32): ``copies`` per variable (weights, gradient, and an optimizer's two slots:
    LAMB's or Adam's m and v; with gradient accumulation add one for the running sum), each
    split as :data:`RULES` say. Activations are not counted: they scale with the per-device
    batch, which gradient accumulation bounds."""
    return copies * sum(sharded_bytes(path, shape, model_parallel) for path, shape in variables)


def bert_large_table(vocab_size=30522, model_axes=(1, 2, 4, 8, 16)):
    """A Markdown table: BERT-large's training state per device (:func:`memory_per_device`)
    for each model-axis size, and the (batch x model) mesh it gives on each TPU v3 slice.
    Builds BERT-large (336M parameters, about 1.3 GB) on the CPU to read its shapes."""
    from . import model as model_lib

    with keras.device("cpu"):
        model = model_lib.build(model_lib.BertConfig.from_size("large", vocab_size))
    variables = [(v.path, tuple(v.shape)) for v in model.trainable_variables]
    parameters = sum(math.prod(shape) for _, shape in variables)
    lines = [
        f"BERT-large, vocabulary {vocab_size:,}: {parameters:,} parameters; float32 weights, "
        "gradients and two optimizer slots (with gradient accumulation, the running sum adds "
        "a quarter).",
        "",
        "| model axis | state per device | of a v3 core's 16 GiB | "
        + " | ".join(f"mesh on {name}" for name in TPU_V3_SLICES) + " |",
        "|---:|---:|---:|" + "---|" * len(TPU_V3_SLICES),
    ]
    for axis in model_axes:
        size = memory_per_device(variables, axis)
        meshes = " | ".join(f"{n // axis} x {axis}" if n >= axis else "-"
                            for n in TPU_V3_SLICES.values())
        lines.append(f"| {axis} | {size / 2**30:.2f} GiB | {size / TPU_V3_DEVICE_BYTES:.0%} | "
                     f"{meshes} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(bert_large_table())
