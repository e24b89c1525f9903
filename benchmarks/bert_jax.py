r"""BERT pre-training phase 1 on Keras' JAX backend: examples per second and device memory with
LAMB against AdamW, on real pre-training examples, with no TensorFlow where it runs.

    # 1. The recipe's examples as NumPy shards (no TensorFlow needed)
    tf-lamb-bert-data --output_dir=data/bert_npy --output_format=npy --max_seq_lengths=128 \
        --max_predictions_per_seq=20 --vocab_file=docs/bert_miniature/vocab.txt \
        --duplication_factor=2
    # 2. On the GPU machine (JAX and Keras only): BERT-base, 200 timed steps per optimizer
    KERAS_BACKEND=jax python benchmarks/bert_jax.py --train_files='data/bert_npy/seq128/train-*'

Each optimizer runs in its own process (so its peak memory is its own), on every device data
parallel (``keras.distribution.DataParallel``), through the recipes' compiled step
(:class:`recipes.common.jax_training.JaxStepRunner`) with the recipe's task, model and
optimizer settings (``bert_large_phase1_64k``'s LAMB, ``bert_large_adamw_baseline``'s AdamW;
clipping, weight-decay exclusions and schedule shape included, the warmup shortened to
``--warmup`` steps). The first ``--max_examples`` examples of the shards are held in memory
and cycled in order (read with NumPy alone; the recipe reads them with grain). Timed:
``--steps`` steps after ``--warmup`` steps (compilation included in those), from the first to
the last result on the host. Memory: the device's peak bytes in use
(``memory_stats()``; not reported on a CPU). Prints a Markdown table and, with ``--output``,
writes the rows as JSON.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {"lamb": "bert_large_phase1_64k", "adamw": "bert_large_adamw_baseline"}


def load_examples(pattern, max_examples):
    """The first ``max_examples`` examples of the NumPy shards matching ``pattern`` (a glob),
    as a dict of arrays ``[examples, ...]`` by feature."""
    from recipes.common import array_shards, runtime

    source = array_shards.ShardSource(runtime.list_files(pattern))
    rows, taken = [], 0
    for shard in source.shards:
        rows.append(np.asarray(shard[:max_examples - taken]))
        taken += len(rows[-1])
        if taken == max_examples:
            break
    records = np.concatenate(rows)
    return {name: records[name] for name in records.dtype.names}


class _Cycle:
    """Global batches cycling through arrays in memory, placed on the devices."""

    def __init__(self, arrays, batch_size):
        self.arrays, self.batch_size = arrays, batch_size
        self.size, self.position = len(arrays["input_ids"]), 0

    def next(self):
        from recipes.common import jax_training

        index = (self.position + np.arange(self.batch_size)) % self.size
        self.position = (self.position + self.batch_size) % self.size
        return jax_training.place({k: v[index] for k, v in self.arrays.items()})


def run_one(args):
    """Times one optimizer in this process; returns its row (a dict)."""
    import dataclasses

    import jax
    import keras

    from recipes.bert import configs, model as model_lib, pretraining
    from recipes.common import batching, jax_training

    keras.mixed_precision.set_global_policy(args.precision)
    devices = jax.devices()
    global_batch = args.per_device_batch * len(devices)
    if len(devices) > 1:
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    arrays = load_examples(args.train_files, args.max_examples)
    seq_length, predictions = arrays["input_ids"].shape[1], arrays["masked_lm_ids"].shape[1]
    config = dataclasses.replace(configs.CONFIGS[CONFIGS[args.one]],
                                 global_batch_size=global_batch, warmup_steps=args.warmup,
                                 train_steps=args.warmup + args.steps + 1)
    keras.utils.set_random_seed(0)
    model = model_lib.build(model_lib.BertConfig.from_size(args.model_size, args.vocab_size),
                            seq_length, predictions)
    optimizer = pretraining.make_optimizer(config, model.trainable_variables)
    plan = batching.plan_batch(global_batch, len(devices), args.per_device_batch)
    runner = jax_training.JaxStepRunner(model, optimizer, pretraining.pretraining_task, plan)
    feed = _Cycle(arrays, global_batch)
    for _ in range(args.warmup):
        metrics = runner.train_step(feed)
    jax.block_until_ready(metrics)
    started = time.perf_counter()
    for _ in range(args.steps):
        metrics = runner.train_step(feed)
    loss = float(metrics["loss"]) / global_batch  # waits for the last step
    seconds = time.perf_counter() - started
    stats = devices[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return {"optimizer": args.one, "config": CONFIGS[args.one], "model": args.model_size,
            "parameters": int(sum(np.prod(v.shape) for v in model.trainable_variables)),
            "devices": f"{len(devices)} x {devices[0].device_kind}", "global_batch": global_batch,
            "sequence": seq_length, "precision": args.precision, "steps": args.steps,
            "examples_per_second": args.steps * global_batch / seconds,
            "ms_per_step": 1000 * seconds / args.steps,
            "peak_memory_gib": peak / 2**30 if peak else None, "last_loss": loss}


def table(rows):
    """The rows as a Markdown table, throughput relative to AdamW's."""
    base = {r["optimizer"]: r["examples_per_second"] for r in rows}.get("adamw")
    lines = ["| optimizer | devices | global batch | examples/s | ms/step | peak memory | "
             "vs AdamW |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        memory = f"{r['peak_memory_gib']:.2f} GiB" if r["peak_memory_gib"] else "n/a"
        ratio = f"{r['examples_per_second'] / base:.2f}" if base else "n/a"
        lines.append(f"| {r['optimizer']} | {r['devices']} | {r['global_batch']} | "
                     f"{r['examples_per_second']:.1f} | {r['ms_per_step']:.1f} | {memory} | "
                     f"{ratio} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train_files", required=True,
                        help="Glob of the recipe's seq-128 NumPy shards "
                             "(tf-lamb-bert-data --output_format=npy).")
    parser.add_argument("--max_examples", type=int, default=20000,
                        help="Examples held in memory and cycled (20,000: 36 MB).")
    parser.add_argument("--model_size", default="base")
    parser.add_argument("--vocab_size", type=int, default=30522,
                        help="Rows of the word embedding (BERT's 30,522; the data's ids fit).")
    parser.add_argument("--per_device_batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200, help="Timed steps per optimizer.")
    parser.add_argument("--warmup", type=int, default=10, help="Untimed steps first.")
    parser.add_argument("--precision", default="mixed_bfloat16",
                        choices=("float32", "mixed_bfloat16"))
    parser.add_argument("--optimizers", default="lamb,adamw")
    parser.add_argument("--output", help="Write the rows here as JSON.")
    parser.add_argument("--one", choices=sorted(CONFIGS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sys.path.insert(0, ROOT)  # the recipes, from this checkout
    if args.one:
        print(json.dumps(run_one(args)))
        return
    rows = []
    for name in args.optimizers.split(","):
        command = [sys.executable, os.path.abspath(__file__), "--one", name]
        command += list(argv if argv is not None else sys.argv[1:])
        env = dict(os.environ, KERAS_BACKEND="jax")
        env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"{name} failed:\n{done.stderr[-3000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"{name}: {rows[-1]['examples_per_second']:.1f} examples/s", flush=True)
    print(table(rows))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
