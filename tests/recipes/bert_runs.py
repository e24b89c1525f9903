"""Helpers of the BERT pre-training tests (test_bert_pretrain.py, test_bert_distributed.py):
the records they train on, the program's command line, and what a run leaves behind."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
from absl import flags

from recipes.bert import create_pretraining_data
from recipes.bert import model as model_lib
from recipes.common import checkpointing

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_ports(n):
    """``n`` TCP ports on 127.0.0.1 that were free a moment ago (a local cluster's)."""
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def make_records(tutorial_dir, output_dir, *args):
    """Writes pre-training records of length 128 and 512 (vocabulary 1,000, two training
    shards, 15% of the documents held out) made from the documents in ``tutorial_dir``;
    ``args`` are further flags (e.g. ``--output_format=npy``)."""
    fv = flags.FlagValues()
    create_pretraining_data.define_flags(fv)
    fv(["prog", f"--input_dir={tutorial_dir}", f"--output_dir={output_dir}", "--vocab_size=1000",
        "--duplication_factor=1", "--num_shards=2", "--heldout_fraction=0.15", *args])
    create_pretraining_data.create(fv, log=lambda *_: None)
    return output_dir


#: XLA's CPU collectives wait up to 10 minutes for a late device thread (the default 40 s
#: aborted one run of 8 virtual devices on 2 loaded cores).
COLLECTIVE_TIMEOUTS = ("--xla_cpu_collective_timeout_seconds=600 "
                       "--xla_cpu_collective_call_terminate_timeout_seconds=600")


def environment(tf_config=None, backend="tensorflow"):
    """The environment of a recipe process: this checkout on the path, the Keras ``backend``
    (on JAX, with patient collectives for ``--cpu_replicas``), and ``TF_CONFIG`` only where
    given (a cluster's task)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    if backend == "jax":
        env["XLA_FLAGS"] = COLLECTIVE_TIMEOUTS
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    if tf_config:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


#: A ``sitecustomize`` that hides packages from every import, as in an install without them
#: (``import tensorflow`` fails, ``importlib.util.find_spec("tensorflow")`` is None).
WITHOUT = """\
import importlib.machinery

_find_spec = importlib.machinery.PathFinder.find_spec.__func__


def _find_spec_without(cls, name, path=None, target=None):
    if name.split(".")[0] in {hidden!r}:
        return None
    return _find_spec(cls, name, path, target)


importlib.machinery.PathFinder.find_spec = classmethod(_find_spec_without)
"""


def environment_without_tensorflow(directory, also=(), **kwargs):
    """:func:`environment` (``kwargs``) in which TensorFlow, and the packages named in
    ``also``, cannot be imported (a ``sitecustomize.py`` written to ``directory``)."""
    directory.mkdir(exist_ok=True)
    hidden = ("tensorflow", *also)
    (directory / "sitecustomize.py").write_text(WITHOUT.format(hidden=hidden))
    env = environment(**kwargs)
    env["PYTHONPATH"] = str(directory) + os.pathsep + env["PYTHONPATH"]
    # The hiding itself is checked, so that a test run in this environment cannot pass with
    # TensorFlow imported after all.
    check = ("import importlib.util, sys; names = sys.argv[1:]; "
             "sys.exit(' '.join(n for n in names if importlib.util.find_spec(n)) or None)")
    found = subprocess.run([sys.executable, "-c", check, *hidden], env=env,
                           capture_output=True, text=True, timeout=60)
    assert found.returncode == 0, f"still importable: {found.stderr}"
    return env


def command(data_dir, output_dir, *args, seq=128):
    """The command line of a short BERT-tiny run (6 LAMB steps at global batch 16 on one
    device, a checkpoint every 2 steps) on ``data_dir``'s records of length ``seq``;
    ``args`` are further flags, which override these."""
    argv = [
        sys.executable, "-m", "recipes.bert.pretrain", "--config=tiny_lamb_1k",
        f"--train_files={data_dir}/seq{seq}/train-*", f"--output_dir={output_dir}",
        "--global_batch_size=16", "--max_per_replica_batch_size=16", "--train_steps=6",
        "--warmup_steps=2", "--log_every=1", "--checkpoint_every=2", "--noprogress",
        "--dropout_rate=0", *args,
    ]
    if seq == 512:
        argv += ["--max_seq_length=512", "--max_predictions_per_seq=80"]
    return argv


def pretrain(data_dir, output_dir, *args, seq=128, check=True, backend="tensorflow"):
    """Runs the program in a fresh process on the Keras ``backend``; returns the
    CompletedProcess."""
    proc = subprocess.run(command(data_dir, output_dir, *args, seq=seq),
                          env=environment(backend=backend),
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    if check:
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def weights(output_dir):
    """The model's variables in the newest checkpoint, by path (restored into a fresh model
    through the checkpoint's object graph, as phase 2 restores phase 1)."""
    vocab = json.loads((output_dir / "config.json").read_text())["vocab_size"]
    model = model_lib.build(model_lib.BertConfig.from_size("tiny", vocab))
    checkpointing.restore_model(model, str(output_dir))
    values = {v.path: v.numpy() for v in model.trainable_variables}
    assert len(values) == 46  # BERT-tiny with both heads: every variable restored
    return values


def jax_values(output_dir, item="weights"):
    """The arrays of ``item`` (``weights``, ``model_state`` or ``optimizer``) in the newest
    checkpoint of a run on the JAX backend, as NumPy arrays keyed by position, whatever
    devices wrote them."""
    import jax
    import orbax.checkpoint as ocp

    manager = ocp.CheckpointManager(os.path.join(output_dir, "checkpoints"))
    restored = manager.restore(manager.latest_step(), args=ocp.args.Composite(**{
        item: ocp.args.StandardRestore(
            fallback_sharding=jax.sharding.SingleDeviceSharding(jax.devices()[0]))}))
    return {i: np.asarray(a) for i, a in enumerate(restored[item])}


def partition_specs(output_dir, item="weights"):
    """How each array of ``item`` in the newest checkpoint of a JAX run was laid out across
    the devices, as recorded by orbax: a list of partition specs (tuples of mesh-axis names
    or None, without trailing Nones: ``()`` for an array whole on every device)."""
    import orbax.checkpoint as ocp

    step = max(int(n) for n in os.listdir(os.path.join(output_dir, "checkpoints")) if n.isdigit())
    metadata = ocp.StandardCheckpointer().metadata(
        os.path.join(output_dir, "checkpoints", str(step), item))
    specs = [list(getattr(a.sharding, "partition_spec", ()) or ())
             for a in metadata.item_metadata.tree]
    for spec in specs:  # orbax may keep or drop trailing None (whole) axes: drop them
        while spec and spec[-1] is None:
            spec.pop()
    return [tuple(spec) for spec in specs]


def event_tags(log_dir):
    """The tags of the TensorBoard event files in ``log_dir``, read as TensorBoard reads them
    (``tf.summary``'s and tensorboardX's alike)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    return {value.tag for path in log_dir.glob("events.*")
            for event in EventFileLoader(str(path)).Load() for value in event.summary.value}


def history(output_dir):
    """The records of the run's ``history.jsonl``, in order."""
    with open(os.path.join(output_dir, "history.jsonl")) as f:
        return [json.loads(line) for line in f]


def assert_same_weights(a, b, atol):
    """Asserts that two :func:`weights` hold the same variables, each within ``atol``."""
    assert a.keys() == b.keys()
    worst = max(float(np.max(np.abs(a[k] - b[k]))) for k in a)
    assert worst <= atol, worst
