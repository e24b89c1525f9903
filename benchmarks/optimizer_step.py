r"""Optimizer step time on BERT-shaped variables, against the peers and the memory-bandwidth floor.

    python benchmarks/optimizer_step.py                      # BERT-base; TensorFlow, and JAX if installed
    python benchmarks/optimizer_step.py --model=bert-large   # about 335M parameters
    python benchmarks/optimizer_step.py --backends=tensorflow --rows=lamb --no-train-step

An optimizer step is memory-bound: it streams every parameter, gradient and slot through memory.
So each row is compared with a floor: the bytes the algorithm must move per float32 parameter
(``FLOOR_BYTES``; LAMB needs two passes, since each layer's trust ratio needs that layer's norms
before the layer moves) divided by the best bandwidth measured in the same run by a probe (a
copy, a triad and a momentum-SGD kernel over the same tensors, XLA-compiled). Each row also
shows its speed against ``keras.optimizers.Lamb`` compiled the same way (graph or XLA), and the
memory it needs beyond the variables, gradients and slots.

Every row runs in a fresh subprocess (its own peak memory, no shared XLA caches); times are the
median of ``--steps`` steps after ``--warmup`` steps. The second table times one whole training
step (forward, backward, apply) of a BERT-base-sized masked-LM model, LAMB against AdamW.

``--baseline=DIR`` compares the library before and after a change in one run: each tf_lamb row
also steps, in turn in the same process, the same optimizer from ``DIR/tf_lamb`` (another
checkout, e.g. ``git archive REV | tar -x -C DIR``), loaded under another name
(:func:`import_baseline`). With ``--step-plan=JSON`` the rows take that ``step_plan`` (the
baseline does not): ``--baseline=. --step-plan='{"ordered": true}'`` times a fast path against
this checkout's default plan.
"""

import argparse
import atexit
import importlib
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

#: Hidden size, feed-forward size, layers, attention heads (Devlin et al. 2019, Table/Sec. 3).
MODELS = {"bert-base": (768, 3072, 12, 12), "bert-large": (1024, 4096, 24, 16)}
VOCAB, MAX_POSITIONS, TYPES = 30522, 512, 2

#: Bytes per float32 parameter an exact step must move (reads + writes), at best:
#: LAMB: pass 1 reads g, m, v, w and writes m, v (norms of w and u); pass 2 reads m, v, w and
#: writes w -> 10 floats. LARS (classic): pass 1 reads w, g (norms); pass 2 reads g, m, w and
#: writes m, w -> 7. LANS: LAMB's two passes, plus a pass over g for its norm, and pass 2
#: also reads g -> 12. AdamW: one pass, reads g, m, v, w, writes m, v, w -> 7. Momentum SGD:
#: reads g, m, w, writes m, w -> 5.
FLOOR_BYTES = {
    "lamb": 40, "lars": 28, "lans": 48, "keras_lamb": 40, "optax_lamb": 40, "adamw": 28, "sgd": 20
}

#: (row id, optimizer, path, outer compile, backends). ``path`` for tf_lamb: ``fused-xla``
#: (the default: one step over all layers, XLA-compiled inside the optimizer),
#: ``fused`` (one step, no XLA), ``generic`` (Keras' per-variable loop). ``outer`` is how the
#: caller's step function is compiled: ``graph`` (tf.function) or ``xla`` (jit_compile=True);
#: on JAX everything runs inside jax.jit.
ROWS = [
    ("lamb/fused-xla", "lamb", "fused-xla", "graph", ("tensorflow",)),
    ("lamb/fused", "lamb", "fused", "graph", ("tensorflow", "jax")),
    ("lamb/generic", "lamb", "generic", "graph", ("tensorflow", "jax")),
    ("lamb/generic+xla", "lamb", "generic", "xla", ("tensorflow",)),
    ("lars/fused-xla", "lars", "fused-xla", "graph", ("tensorflow",)),
    ("lars/fused", "lars", "fused", "graph", ("tensorflow", "jax")),
    ("lars/generic", "lars", "generic", "graph", ("tensorflow", "jax")),
    ("lars/generic+xla", "lars", "generic", "xla", ("tensorflow",)),
    ("lans/fused-xla", "lans", "fused-xla", "graph", ("tensorflow",)),
    ("lans/fused", "lans", "fused", "graph", ("tensorflow", "jax")),
    ("lans/generic", "lans", "generic", "graph", ("tensorflow", "jax")),
    ("lans/generic+xla", "lans", "generic", "xla", ("tensorflow",)),
    ("keras_lamb", "keras_lamb", "-", "graph", ("tensorflow", "jax")),
    ("keras_lamb+xla", "keras_lamb", "-", "xla", ("tensorflow",)),
    ("optax_lamb", "optax_lamb", "-", "graph", ("jax",)),
    ("adamw", "adamw", "-", "graph", ("tensorflow", "jax")),
    ("adamw+xla", "adamw", "-", "xla", ("tensorflow",)),
    ("sgd", "sgd", "-", "graph", ("tensorflow", "jax")),
    ("sgd+xla", "sgd", "-", "xla", ("tensorflow",)),
]
PROBES = ("copy", "triad", "momentum")
#: Bytes per parameter each probe moves: copy reads 1, writes 1; triad reads 2, writes 1;
#: the momentum kernel reads g, m, w and writes m, w.
PROBE_BYTES = {"copy": 8, "triad": 12, "momentum": 20}


def bert_shapes(model):
    """The trainable variables of a BERT encoder with its pooler: ``[(path, shape)]``."""
    hidden, ffn, layers, _ = MODELS[model]
    shapes = [
        ("embeddings/word", (VOCAB, hidden)),
        ("embeddings/position", (MAX_POSITIONS, hidden)),
        ("embeddings/token_type", (TYPES, hidden)),
        ("embeddings/layer_norm/gamma", (hidden,)),
        ("embeddings/layer_norm/beta", (hidden,)),
    ]
    for i in range(layers):
        prefix = f"transformer_layer_{i}"
        for name in ("query", "key", "value", "attention_output"):
            shapes += [(f"{prefix}/{name}/kernel", (hidden, hidden)), (f"{prefix}/{name}/bias", (hidden,))]
        shapes += [
            (f"{prefix}/attention_layer_norm/gamma", (hidden,)),
            (f"{prefix}/attention_layer_norm/beta", (hidden,)),
            (f"{prefix}/intermediate/kernel", (hidden, ffn)),
            (f"{prefix}/intermediate/bias", (ffn,)),
            (f"{prefix}/output/kernel", (ffn, hidden)),
            (f"{prefix}/output/bias", (hidden,)),
            (f"{prefix}/output_layer_norm/gamma", (hidden,)),
            (f"{prefix}/output_layer_norm/beta", (hidden,)),
        ]
    shapes += [("pooler/kernel", (hidden, hidden)), ("pooler/bias", (hidden,))]
    return shapes


def allocator_bytes(reset=False):
    """TensorFlow's CPU allocator: ``(bytes allocated now, the most allocated since the last
    reset)``; ``reset`` starts a new peak. ``None`` on other backends (a JAX row reads XLA's
    memory analysis instead)."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    if reset:
        tf.config.experimental.reset_memory_stats("CPU:0")
    info = tf.config.experimental.get_memory_info("CPU:0")
    return info["current"], info["peak"]


def time_interleaved(steppers, steps, warmup, repeat=1):
    """Times several ``(step, sync)`` pairs in turn, step by step, so that drift in a shared
    machine's speed hits them all alike.

    Each timed sample is ``repeat`` calls and one sync, over ``repeat``: with ``repeat > 1``
    an asynchronous device (a GPU under JAX) overlaps one step's dispatch with the last one's
    work, as a training loop does.

    Returns:
        ``{name: {"median_s", "min_s", "extra_bytes"}}``: the median and best of ``steps``
        timed samples after ``warmup`` untimed calls, and on TensorFlow the most one sample
        allocated beyond what was allocated when it started (its temporaries, from
        TensorFlow's allocator; ``None`` elsewhere). The allocator, unlike the resident set,
        sees memory it reuses between steps and none of another process's or library's.
    """
    for step, sync in steppers.values():
        for _ in range(warmup):
            sync(step())
    times = {name: [] for name in steppers}
    extra = dict.fromkeys(steppers)
    for _ in range(steps):
        for name, (step, sync) in steppers.items():
            before = allocator_bytes(reset=True)
            start = time.perf_counter()
            for _ in range(repeat - 1):
                step()
            sync(step())
            times[name].append((time.perf_counter() - start) / repeat)
            if before is not None:
                held = allocator_bytes()[1] - before[0]
                extra[name] = max(extra[name] or 0, held)
    return {
        name: {"median_s": statistics.median(t), "min_s": min(t), "extra_bytes": extra[name]}
        for name, t in times.items()
    }


def random_arrays(shapes, seed, scale):
    rng = np.random.default_rng(seed)
    return [scale * rng.standard_normal(shape, dtype=np.float32) for _, shape in shapes]


def import_baseline(checkout):
    """``checkout``'s ``tf_lamb`` package, imported as ``tf_lamb_baseline`` beside this one.

    Comparing two versions of the library step by step in one process (so that a shared
    machine's drifting speed hits both alike) needs both importable at once. The package is
    copied to a temporary directory under the new name, with every whole-word ``tf_lamb`` in
    its sources (absolute imports, and ``register_keras_serializable(package="tf_lamb")``, so
    that its classes register beside this version's rather than over them) renamed.
    """
    name = "tf_lamb_baseline"
    root = tempfile.mkdtemp(prefix="tf_lamb_baseline_")
    atexit.register(shutil.rmtree, root, True)
    target = os.path.join(root, name)
    shutil.copytree(os.path.join(checkout, "tf_lamb"), target,
                    ignore=shutil.ignore_patterns("__pycache__"))
    for folder, _, files in os.walk(target):
        for file in (f for f in files if f.endswith(".py")):
            with open(os.path.join(folder, file), encoding="utf-8") as f:
                source = f.read()
            with open(os.path.join(folder, file), "w", encoding="utf-8") as f:
                f.write(re.sub(r"\btf_lamb\b", name, source))
    sys.path.insert(0, root)
    return importlib.import_module(name)


def make_optimizer(name, path, library=None, step_plan=None):
    """``library`` is the ``tf_lamb`` module to build LAMB, LARS and LANS from (this
    checkout's by default; :func:`import_baseline`'s for a baseline); ``step_plan``, when
    given, their ``step_plan`` argument."""
    import keras

    if library is None:
        import tf_lamb as library

    if name in ("lamb", "lars", "lans"):
        kwargs = {"fused": path != "generic", "jit_compile": path == "fused-xla"}
        if step_plan is not None:
            kwargs["step_plan"] = step_plan
        if name == "lamb":
            return library.LAMB(
                learning_rate=1e-3,
                weight_decay=0.01,
                exclude_from_weight_decay=["layer_norm", "bias"],
                **kwargs,
            )
        if name == "lars":
            return library.LARS(
                learning_rate=1.0,
                weight_decay=1e-4,
                exclude_from_weight_decay=["layer_norm", "bias"],
                **kwargs,
            )
        return library.LANS(
            learning_rate=1e-3, exclude_from_weight_decay=["layer_norm", "bias"], **kwargs
        )
    # The peers decay the same layers at the same rate (Keras matches variable names, which
    # here hold the whole path).
    if name == "keras_lamb":
        optimizer = keras.optimizers.Lamb(learning_rate=1e-3, weight_decay=0.01)
    elif name == "adamw":
        optimizer = keras.optimizers.AdamW(learning_rate=1e-3, weight_decay=0.01)
    else:
        optimizer = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9, weight_decay=1e-4)
    optimizer.exclude_from_weight_decay(var_names=["layer_norm", "bias"])
    return optimizer


def optimizer_stepper(name, path, outer, shapes, library=None, step_plan=None):
    """``(step, sync, optimizer)`` applying one optimizer to fresh BERT-shaped variables
    (LAMB, LARS and LANS from ``library``: see :func:`make_optimizer`)."""
    import keras

    if name == "optax_lamb":
        return optax_stepper(shapes)
    variables = [
        keras.Variable(a, name=p.replace("/", "_"))
        for (p, _), a in zip(shapes, random_arrays(shapes, 0, 0.02))
    ]
    grads = [keras.ops.convert_to_tensor(a) for a in random_arrays(shapes, 1, 1e-3)]
    optimizer = make_optimizer(name, path, library, step_plan)
    optimizer.build(variables)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        step = tf.function(lambda: optimizer.apply(grads, variables), jit_compile=outer == "xla")
        return step, lambda _: None, optimizer.variables
    import jax

    def apply(trainable_values, optimizer_values, grads):
        return optimizer.stateless_apply(optimizer_values, grads, trainable_values)

    state = {"opt": [v.value for v in optimizer.variables], "train": [v.value for v in variables]}
    compiled = jax_compile(apply, state["train"], state["opt"], grads)

    def jax_step():
        state["train"], state["opt"] = compiled(state["train"], state["opt"], grads)
        return state["train"]

    jax_step.temp_bytes = compiled.memory_analysis().temp_size_in_bytes
    return jax_step, jax.block_until_ready, [v.value for v in optimizer.variables]


def optax_stepper(shapes):
    """``(step, sync, slots)`` of ``optax.lamb`` (JAX only) with the same decay and exclusions."""
    import jax
    import optax

    params = [jax.numpy.asarray(a) for a in random_arrays(shapes, 0, 0.02)]
    grads = [jax.numpy.asarray(a) for a in random_arrays(shapes, 1, 1e-3)]
    mask = [not ("layer_norm" in p or "bias" in p) for p, _ in shapes]
    transform = optax.lamb(learning_rate=1e-3, weight_decay=0.01, mask=mask)

    def apply(params, opt_state, grads):
        updates, opt_state = transform.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    state = {"opt": transform.init(params), "train": params}
    compiled = jax_compile(apply, state["train"], state["opt"], grads)

    def jax_step():
        state["train"], state["opt"] = compiled(state["train"], state["opt"], grads)
        return state["train"]

    jax_step.temp_bytes = compiled.memory_analysis().temp_size_in_bytes
    return jax_step, jax.block_until_ready, jax.tree_util.tree_leaves(state["opt"])


def jax_compile(apply, params, slots, grads):
    """``apply(params, slots, grads) -> (params, slots)`` compiled once by XLA with the
    parameters and slots donated; its ``memory_analysis()`` gives the step's scratch memory.

    The outputs come in the order of the donated inputs, as in Keras' JAX trainer: JAX pairs
    donated buffers with outputs of the same shape in order, so with the order swapped a
    layer's new weights would be written into its first moment's buffer and XLA would copy
    every slot to keep the inputs it still reads (hundreds of MiB of scratch).
    """
    import jax

    return jax.jit(apply, donate_argnums=(0, 1)).lower(params, slots, grads).compile()


def probe_stepper(probe, shapes):
    """``(step, sync)`` of a bandwidth probe over the BERT tensors, XLA-compiled: ``copy``
    (m = w), ``triad`` (m = w + 0.5 g) or ``momentum`` (m = 0.9 m + g; w -= 0.1 m)."""
    import keras

    arrays = [random_arrays(shapes, seed, 0.02) for seed in range(3)]
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        w, m = ([tf.Variable(a) for a in group] for group in arrays[:2])
        g = [tf.constant(a) for a in arrays[2]]

        def kernel():
            for wi, mi, gi in zip(w, m, g):
                if probe == "copy":
                    mi.assign(wi)
                elif probe == "triad":
                    mi.assign(wi + 0.5 * gi)
                else:
                    mi.assign(0.9 * mi + gi)
                    wi.assign_sub(0.1 * mi)

        return tf.function(kernel, jit_compile=True), lambda _: None
    import jax

    # Only what a probe writes is returned, into donated buffers: an input handed back
    # unchanged would be copied to a fresh output buffer, bytes the probe does not count.
    def jax_kernel(w, m, g):
        if probe == "copy":
            return [wi.copy() for wi in w]
        if probe == "triad":
            return [wi + 0.5 * gi for wi, gi in zip(w, g)]
        m = [0.9 * mi + gi for mi, gi in zip(m, g)]
        return [wi - 0.1 * mi for wi, mi in zip(w, m)], m

    jitted = jax.jit(jax_kernel, donate_argnums=(0, 1) if probe == "momentum" else (1,))
    state = {k: [jax.numpy.asarray(a) for a in group] for k, group in zip("wmg", arrays)}

    def jax_step():
        out = jitted(state["w"], state["m"], state["g"])
        if probe == "momentum":
            state["w"], state["m"] = out
        else:
            state["m"] = out
        return state["m"]

    return jax_step, jax.block_until_ready


def worker_optimizer(row, model, steps, warmup, repeat, baseline=None, step_plan=None):
    """Times one row, ``keras.optimizers.Lamb`` compiled the same way and the three
    bandwidth probes, interleaved in this process; returns the JSON result. With
    ``baseline`` (a checkout), a tf_lamb row's optimizer from that checkout steps in turn too."""
    import keras

    _, name, path, outer, _ = next(r for r in ROWS if r[0] == row)
    shapes = bert_shapes(model)
    parameters = int(sum(np.prod(s) for _, s in shapes))
    step, sync, slots = optimizer_stepper(name, path, outer, shapes, step_plan=step_plan)
    steppers = {"row": (step, sync)}
    baseline_step = None
    if baseline and name in ("lamb", "lars", "lans"):
        baseline_step, baseline_sync, _ = optimizer_stepper(
            name, path, outer, shapes, import_baseline(baseline)
        )
        steppers["baseline"] = (baseline_step, baseline_sync)
    if name != "keras_lamb":
        keras_outer = "xla" if compile_mode(keras.backend.backend(), path, outer) == "xla" else outer
        steppers["keras_lamb"] = optimizer_stepper("keras_lamb", "-", keras_outer, shapes)[:2]
    for probe in PROBES:
        steppers[probe] = probe_stepper(probe, shapes)
    timings = time_interleaved(steppers, steps, warmup, repeat)
    bandwidth = max(PROBE_BYTES[p] * parameters / timings[p]["median_s"] for p in PROBES)
    row_time = timings["row"]["median_s"]
    slot_bytes = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in slots)
    temp_bytes = getattr(step, "temp_bytes", None)
    result = {
        "median_s": row_time,
        "min_s": timings["row"]["min_s"],
        "floor_s": FLOOR_BYTES[name] * parameters / bandwidth,
        "bandwidth": bandwidth,
        "probes": {p: PROBE_BYTES[p] * parameters / timings[p]["median_s"] for p in PROBES},
        "keras_lamb_s": timings.get("keras_lamb", timings["row"])["median_s"],
        "extra_bytes": timings["row"]["extra_bytes"] if temp_bytes is None else temp_bytes,
        "device": device_name(),
        "slot_bytes": slot_bytes,
        "parameters": parameters,
        "tensors": len(shapes),
        "largest_variable_bytes": 4 * max(int(np.prod(s)) for _, s in shapes),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    if baseline_step is not None:
        result["baseline_s"] = timings["baseline"]["median_s"]
        result["baseline_extra_bytes"] = getattr(
            baseline_step, "temp_bytes", timings["baseline"]["extra_bytes"]
        )
    return result


def device_name():
    """The device the optimizer runs on, as its framework names it."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        device = jax.devices()[0]
        return f"{device.platform}: {device.device_kind}"
    return "cpu"


def bert_mlm_model(model, sequence):
    """A BERT encoder of ``model``'s size with a (untied) masked-LM output layer."""
    import keras

    hidden, ffn, layers, heads = MODELS[model]
    tokens = keras.Input((sequence,), dtype="int32")
    x = keras.layers.Embedding(VOCAB, hidden, name="embeddings")(tokens)
    x = x + keras.layers.Embedding(MAX_POSITIONS, hidden, name="position_embeddings")(
        keras.ops.arange(sequence)[None, :]
    )
    x = keras.layers.LayerNormalization(name="embeddings_layer_norm")(x)
    for i in range(layers):
        attention = keras.layers.MultiHeadAttention(heads, hidden // heads, name=f"attention_{i}")
        x = keras.layers.LayerNormalization(name=f"attention_layer_norm_{i}")(x + attention(x, x))
        y = keras.layers.Dense(ffn, activation="gelu", name=f"intermediate_{i}")(x)
        y = keras.layers.Dense(hidden, name=f"output_{i}")(y)
        x = keras.layers.LayerNormalization(name=f"output_layer_norm_{i}")(x + y)
    return keras.Model(tokens, keras.layers.Dense(VOCAB, name="mlm_logits")(x))


def worker_train_step(model, steps, warmup, batch, sequence):
    """One training step (forward, backward, apply) of a BERT-sized masked-LM model with
    LAMB and with AdamW, interleaved; TensorFlow backend, each as ``tf.function`` (graph),
    as Keras runs a CPU step by default."""
    import keras
    import tensorflow as tf

    rng = np.random.default_rng(0)
    inputs = tf.constant(rng.integers(0, VOCAB, (batch, sequence)), tf.int32)
    labels = tf.constant(rng.integers(0, VOCAB, (batch, sequence)), tf.int32)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def train_step(net, optimizer):
        weights = net.trainable_variables
        optimizer.build(weights)

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                loss = loss_fn(labels, net(inputs, training=True))
            optimizer.apply(tape.gradient(loss, weights), weights)
            return loss

        return step, lambda _: None

    nets = {name: bert_mlm_model(model, sequence) for name in ("adamw", "lamb")}
    steppers = {name: train_step(net, make_optimizer(name, "fused-xla")) for name, net in nets.items()}
    weights = nets["lamb"].trainable_variables
    result = time_interleaved(steppers, steps, warmup)
    result["parameters"] = int(sum(np.prod(v.shape) for v in weights))
    return result


def run_worker(args):
    if args.worker == "train":
        result = worker_train_step(args.model, args.train_steps, 1, args.batch, args.sequence)
    else:
        result = worker_optimizer(
            args.worker, args.model, args.steps, args.warmup, args.repeat, args.baseline,
            json.loads(args.step_plan) if args.step_plan else None,
        )
    print("RESULT " + json.dumps(result), flush=True)


def spawn(job, backend, args):
    """Runs one job in a fresh process with ``KERAS_BACKEND=backend``; its result, or None."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(__file__))), env.get("PYTHONPATH", "")]
    )
    command = [sys.executable, os.path.abspath(__file__), f"--worker={job}", f"--model={args.model}",
               f"--steps={args.steps}", f"--warmup={args.warmup}", f"--train-steps={args.train_steps}",
               f"--batch={args.batch}", f"--sequence={args.sequence}", f"--repeat={args.repeat}"]
    if args.baseline:
        command.append(f"--baseline={args.baseline}")
    if args.step_plan:
        command.append(f"--step-plan={args.step_plan}")
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    print(f"  [{backend}] {job}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
    print(f"  [{backend}] {job} failed (exit {done.returncode}):\n{tail}", file=sys.stderr)
    return None


def installed(module):
    probe = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True)
    return probe.returncode == 0


def mib(n):
    return f"{n / 2**20:,.0f}"


def ms(seconds):
    """Milliseconds, with two decimals below 10 ms (a GPU's steps)."""
    return f"{seconds * 1e3:,.2f}" if seconds < 0.01 else f"{seconds * 1e3:,.0f}"


def compile_mode(backend, path, outer):
    """How a row's step is compiled: ``jax.jit``, ``xla`` or ``graph``."""
    if backend == "jax":
        return "jax.jit"
    return "xla" if outer == "xla" or path == "fused-xla" else "graph"


def print_optimizer_table(backend, args, rows):
    """One markdown table, a line printed as each row's process ends. Every ratio compares
    timings taken in the same process, in turn: the row, ``keras.optimizers.Lamb`` compiled
    the same way, the bandwidth probes, and with ``--baseline`` the row's optimizer from the
    baseline checkout (three more columns; "-" for rows that are not tf_lamb's)."""
    print(f"\n## {backend}\n")
    print("Temporaries: " + ("XLA's scratch buffers for one step (memory_analysis)." if backend == "jax"
          else "the most one step allocated beyond what was allocated before it (TensorFlow's "
          "allocator).") + "\n")
    extra_columns = " baseline ms | speed vs baseline | baseline temporaries MiB |" if args.baseline else ""
    print("| optimizer | path | compile | median ms | floor ms | x floor | speed-up on keras Lamb "
          "| probe GB/s | slots MiB | temporaries MiB |" + extra_columns)
    print("|---|---|---|---|---|---|---|---|---|---|" + "---|" * extra_columns.count("|"), flush=True)
    largest, devices = None, set()
    for row, name, path, outer, _ in rows:
        r = spawn(row, backend, args)
        mode = compile_mode(backend, path, outer)
        if r is None:
            print(f"| {name} | {path} | {mode} | failed | | | | | | |" + " |" * extra_columns.count("|"))
            continue
        largest = r["largest_variable_bytes"]
        devices.add(r["device"])
        line = (
            f"| {name} | {path} | {mode} | {ms(r['median_s'])} | {ms(r['floor_s'])} | "
            f"{r['median_s'] / r['floor_s']:.2f} | {r['keras_lamb_s'] / r['median_s']:.2f}x | "
            f"{r['bandwidth'] / 1e9:.0f} | {mib(r['slot_bytes'])} | {mib(r['extra_bytes'])} |"
        )
        if "baseline_s" in r:
            line += (f" {ms(r['baseline_s'])} | {r['baseline_s'] / r['median_s']:.2f}x | "
                     f"{mib(r['baseline_extra_bytes'])} |")
        elif args.baseline:
            line += " - | - | - |"
        print(line, flush=True)
    if largest:
        print(f"\nDevice: {', '.join(sorted(devices))}. (The largest single variable is {mib(largest)} MiB. Slots include the "
              "optimizer's step counter, learning rate and layer statistics.)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="bert-base")
    parser.add_argument("--backends", default="tensorflow,jax",
                        help="Comma-separated Keras backends; those not installed are skipped.")
    parser.add_argument("--rows", default="",
                        help="Only rows whose id starts with one of these (comma-separated), e.g. lamb,keras_lamb.")
    parser.add_argument("--steps", type=int, default=10, help="Timed steps per row (the median is shown).")
    parser.add_argument("--warmup", type=int, default=2, help="Untimed steps first (compilation).")
    parser.add_argument("--repeat", type=int, default=1,
                        help="Steps per timed sample, one sync at its end (10 on a GPU: dispatch overlaps).")
    parser.add_argument("--no-train-step", action="store_true", help="Skip the training-step table.")
    parser.add_argument("--train-steps", type=int, default=5, help="Timed steps of the training-step table.")
    parser.add_argument("--batch", type=int, default=8, help="Sequences per training step.")
    parser.add_argument("--sequence", type=int, default=128, help="Tokens per sequence.")
    parser.add_argument("--baseline", metavar="DIR",
                        help="Another checkout of this repository: each tf_lamb row also times its "
                        "optimizer from DIR/tf_lamb, in turn in the same process.")
    parser.add_argument("--step-plan", metavar="JSON",
                        help="The tf_lamb rows' step_plan argument, e.g. '{\"ordered\": true}' "
                        "(not the baseline's: with --baseline=. it times a fast path against "
                        "the default plan, in turn in the same process).")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return run_worker(args)
    if args.baseline:
        args.baseline = os.path.abspath(args.baseline)
        if not os.path.isfile(os.path.join(args.baseline, "tf_lamb", "__init__.py")):
            parser.error(f"--baseline: {args.baseline} has no tf_lamb package")
    prefixes = tuple(p for p in args.rows.split(",") if p)
    parameters = int(sum(np.prod(s) for _, s in bert_shapes(args.model)))
    print(f"# {args.model}: {parameters / 1e6:.1f}M parameters in {len(bert_shapes(args.model))} tensors; "
          f"median of {args.steps} steps after {args.warmup}; {os.cpu_count()} CPUs")
    for backend in [b for b in args.backends.split(",") if b]:
        if not installed(backend):
            print(f"\n({backend} is not installed: skipped)")
            continue
        rows = [r for r in ROWS if backend in r[4] and (not prefixes or r[0].startswith(prefixes))]
        if not installed("optax"):
            rows = [r for r in rows if r[1] != "optax_lamb"]
        print_optimizer_table(backend, args, rows)
    if not args.no_train_step and installed("tensorflow"):
        print(f"\n## tensorflow: one training step of a {args.model}-sized masked-LM model\n")
        print(f"Batch {args.batch} x {args.sequence} tokens; forward, backward and apply in one "
              "tf.function (graph mode, as Keras runs on CPU), LAMB's apply XLA-compiled by "
              "itself; median of the steps, taken in turn.\n")
        result = spawn("train", "tensorflow", args)
        if result:
            print("| optimizer | median s | vs AdamW |")
            print("|---|---|---|")
            for name in ("adamw", "lamb"):
                ratio = result[name]["median_s"] / result["adamw"]["median_s"]
                print(f"| {name} | {result[name]['median_s']:.3f} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
