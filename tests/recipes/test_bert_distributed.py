"""Tests of BERT pre-training under tf.distribute (recipes/bert/pretrain.py), each against a run
on one device at the same global batch: gradient accumulation, two MirroredStrategy replicas with
XLA-compiled passes, and a two-worker MultiWorkerMirroredStrategy cluster on 127.0.0.1 that is
killed and resumed. Every run is a separate process, as a user (or a cluster) starts it.
"""

import subprocess

import pytest
import tensorflow as tf

from .bert_runs import (ROOT, assert_same_weights, command, environment, free_ports, history,
                        pretrain, weights)

pytestmark = pytest.mark.slow


def test_accumulation_and_two_mirrored_xla_replicas_equal_one_pass_on_one_device(
        bert_data_dir, tmp_path):
    one = tmp_path / "one"
    pretrain(bert_data_dir, one)
    accumulated = tmp_path / "accumulated"
    out = pretrain(bert_data_dir, accumulated, "--max_per_replica_batch_size=4")
    assert "1 replica(s) x 4 per replica x 4 accumulation step(s)" in out.stdout
    # Two replicas, each accumulating two passes, each pass XLA-compiled (compiling the whole
    # Keras train step fails under MirroredStrategy; the recipe compiles each replica's pass).
    mirrored = tmp_path / "mirrored"
    out = pretrain(bert_data_dir, mirrored, "--cpu_replicas=2", "--strategy=mirrored",
                   "--max_per_replica_batch_size=4", "--jit_compile")
    assert "MirroredStrategy: global batch 16 = 2 replica(s) x 4 per replica x 2" in out.stdout
    assert "float32, XLA passes" in out.stdout
    reference = weights(one)
    # The same 16 examples per step, summed in another order (and, under XLA, with the
    # forward and backward passes' float32 arithmetic fused differently): float32 rounding
    # over 6 LAMB steps on a 0.6M-parameter model stays under 1e-5.
    assert_same_weights(reference, weights(accumulated), atol=1e-5)
    assert_same_weights(reference, weights(mirrored), atol=1e-5)


def test_two_workers_on_localhost_equal_one_worker_at_the_same_global_batch(
        bert_data_dir, tmp_path):
    # Without the example shuffle each host reads its own file in order, and one worker reads
    # both files interleaved record by record: every global batch of 16 holds the same 16
    # examples (8 from each file) in both runs, so only the summation order differs.
    steps = ["--train_steps=4", "--warmup_steps=1", "--shuffle_buffer=0", "--checkpoint_every=2"]
    one = tmp_path / "one"
    pretrain(bert_data_dir, one, *steps)
    two = tmp_path / "two"

    def cluster_run(*args):
        cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(2)]}
        workers = [
            subprocess.Popen(
                command(bert_data_dir, two, *steps, "--strategy=multi_worker", *args),
                env=environment({"cluster": cluster, "task": {"type": "worker", "index": i}}),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
            )
            for i in range(2)
        ]
        outputs = [w.communicate(timeout=600) for w in workers]
        return [w.returncode for w in workers], outputs

    # Both hosts die after step 3 (checkpoint at 2) and are restarted: each resumes its own
    # data position from its own checkpoint.
    codes, _ = cluster_run("--kill_at_step=3")
    # SIGKILL, or an error when the other worker's death is noticed first.
    assert all(code != 0 for code in codes)
    assert tf.train.latest_checkpoint(str(two)).endswith("ckpt-2")
    codes, outputs = cluster_run()
    assert codes == [0, 0], outputs[0][1][-3000:] + outputs[1][1][-3000:]
    assert ("MultiWorkerMirroredStrategy: global batch 16 = 2 replica(s) x 8 per replica x 1 "
            "accumulation step(s)") in outputs[0][0]
    assert all("resumed from" in out and "ckpt-2" in out for out, _ in outputs)
    # The chief wrote the run's checkpoints and history; worker 1 kept its own checkpoints
    # (its data position) and logged nothing.
    assert [r["step"] for r in history(two)] == [1, 2, 3, 4]  # killed before logging 3
    assert tf.train.latest_checkpoint(str(two / ".workers" / "worker_1")).endswith("ckpt-4")
    # Same examples, same initialization (seeded), other summation order: 4 LAMB steps.
    assert_same_weights(weights(one), weights(two), atol=1e-5)
    losses = {r["step"]: r["loss"] for r in history(one)}
    assert {r["step"]: r["loss"] for r in history(two)} == pytest.approx(losses, rel=1e-5)
