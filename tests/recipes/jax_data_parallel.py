"""Trains the study's MLP for a few LAMB steps on the JAX backend twice, in one process with
8 virtual CPU devices: on one device, then under ``keras.distribution.DataParallel`` over all
8 at the same global batch; prints the largest weight difference as JSON.

    XLA_FLAGS=--xla_force_host_platform_device_count=8 KERAS_BACKEND=jax \\
        python tests/recipes/jax_data_parallel.py
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import tf_lamb  # noqa: E402
from recipes.common import jax_training, loop, models  # noqa: E402

BATCH, STEPS = 512, 6


def train(parallel):
    keras.backend.clear_session()
    devices = jax_training.use_all_devices(BATCH) if parallel else 1
    if not parallel:
        keras.distribution.set_distribution(None)
    rng = np.random.default_rng(0)
    x = rng.random((BATCH * STEPS, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, size=(BATCH * STEPS,)).astype("int32")
    model = models.build_model("mlp", seed=0)
    initial = [np.asarray(v.value) for v in model.trainable_variables]
    optimizer = tf_lamb.LAMB(learning_rate=0.01, weight_decay=0.01, global_clipnorm=1.0,
                             exclude_from_weight_decay=["bias"])
    runner = loop.make_runner(model, optimizer, BATCH)
    feed = loop.array_feed(x, y, BATCH, STEPS, seed=0)
    batch_sharding = str(getattr(feed.next()[0].sharding, "spec", "one device"))
    feed = loop.array_feed(x, y, BATCH, STEPS, seed=0)
    losses = [float(runner.train_step(feed)["loss"]) for _ in range(STEPS)]
    final = [np.asarray(v.value) for v in model.trainable_variables]
    return {
        "devices": devices,
        "batch_sharding": batch_sharding,
        "variable_shardings": sorted({str(getattr(v.value.sharding, "spec", "one device"))
                                      for v in model.trainable_variables}),
        "weights": final,
        "moved": max(float(np.max(np.abs(a - b))) for a, b in zip(final, initial)),
        "losses": losses,
    }


one, many = train(parallel=False), train(parallel=True)
try:
    jax_training.use_all_devices(BATCH + 4)
    indivisible = "no error"
except ValueError as error:
    indivisible = str(error)
print(json.dumps({
    "indivisible": indivisible,
    "device_count": len(jax.devices()),
    "runs": [{k: v for k, v in run.items() if k != "weights"} for run in (one, many)],
    "max_abs_difference": max(float(np.max(np.abs(a - b)))
                              for a, b in zip(one["weights"], many["weights"])),
}))
