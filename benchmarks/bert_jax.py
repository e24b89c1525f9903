r"""BERT pre-training phase 1 on Keras' JAX backend: examples per second and device memory with
LAMB against AdamW, on real pre-training examples, with no TensorFlow where it runs.

    # 1. Here (TensorFlow installed): the recipe's records -> one NumPy file (a few MB)
    python benchmarks/bert_jax.py --make_data --records='data/bert/seq128/train-*' \
        --data=benchmarks/data/bert_seq128.npz
    # 2. On the GPU machine (JAX and Keras only): BERT-base, 200 timed steps per optimizer
    KERAS_BACKEND=jax python benchmarks/bert_jax.py --data=benchmarks/data/bert_seq128.npz

Each optimizer runs in its own process (so its peak memory is its own), on every device data
parallel (``keras.distribution.DataParallel``), through the recipes' compiled step
(:class:`recipes.common.jax_training.JaxStepRunner`) with the recipe's task, model and
optimizer settings (``bert_large_phase1_64k``'s LAMB, ``bert_large_adamw_baseline``'s AdamW;
clipping, weight-decay exclusions and schedule shape included, the warmup shortened to
``--warmup`` steps). The examples cycle through the file
in order. Timed: ``--steps`` steps after ``--warmup`` steps (compilation included in those),
from the first to the last result on the host. Memory: the device's peak bytes in use
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
FEATURES = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions", "masked_lm_ids",
            "masked_lm_weights", "next_sentence_labels")
CONFIGS = {"lamb": "bert_large_phase1_64k", "adamw": "bert_large_adamw_baseline"}


def make_data(records, path, max_examples=20000, seq_length=128, predictions=20):
    """Reads the first ``max_examples`` examples of the recipe's records (``records``: a glob)
    into one compressed NumPy file of int32 / float32 arrays (the recipe's parsed features);
    returns how many."""
    from recipes.bert import input_pipeline
    from recipes.common import tfrecords

    files = tfrecords.list_files(records)
    dataset = input_pipeline.make_dataset(files, seq_length, predictions, 1024, training=False)
    parts = list(dataset.unbatch().take(max_examples).batch(1024).as_numpy_iterator())
    arrays = {k: np.concatenate([p[k] for p in parts]) for k in FEATURES}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.savez_compressed(path, **arrays)
    return len(arrays["input_ids"])


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
    with np.load(args.data) as data:
        arrays = {k: data[k] for k in FEATURES}
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
    parser.add_argument("--data", required=True, help="NumPy file of examples (--make_data).")
    parser.add_argument("--make_data", action="store_true",
                        help="Write --data from --records (needs TensorFlow) and stop.")
    parser.add_argument("--records", help="Glob of the recipe's seq-128 TFRecords.")
    parser.add_argument("--max_examples", type=int, default=20000,
                        help="Examples written by --make_data (20,000: about 5 MB).")
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
    if args.make_data:
        print(f"{make_data(args.records, args.data, args.max_examples)} examples in "
              f"{args.data}")
        return
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
