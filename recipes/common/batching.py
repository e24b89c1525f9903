"""The global-batch arithmetic of every recipe and back-end: how a global batch is split across
replicas (TensorFlow's ``tf.distribute`` replicas, or the devices along JAX's batch axis) and
accumulation steps. Imports neither TensorFlow nor JAX.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class BatchPlan:
    """How a global batch is reached: ``replicas x per_replica_batch x accumulation_steps``.

    Attributes:
        global_batch_size: int, examples per optimizer step.
        replicas: int, replicas in sync (all hosts).
        accumulation_steps: int, forward/backward passes summed per optimizer step.
        per_replica_batch_size: int, examples per replica per pass.
    """

    global_batch_size: int
    replicas: int
    accumulation_steps: int
    per_replica_batch_size: int

    @property
    def pass_batch_size(self):
        """Examples per forward/backward pass across all replicas."""
        return self.replicas * self.per_replica_batch_size

    def describe(self):
        return (
            f"global batch {self.global_batch_size} = {self.replicas} replica(s) x "
            f"{self.per_replica_batch_size} per replica x {self.accumulation_steps} "
            "accumulation step(s)"
        )


def plan_batch(global_batch_size, replicas, max_per_replica_batch_size):
    """The fewest accumulation steps that keep each replica's batch at most
    ``max_per_replica_batch_size``.

    Raises:
        ValueError: a non-positive size, or ``global_batch_size`` not divisible by
            ``replicas`` (the message names ``--global_batch_size``).
    """
    if global_batch_size < 1 or max_per_replica_batch_size < 1:
        raise ValueError(
            "--global_batch_size and --max_per_replica_batch_size must be >= 1. Received: "
            f"{global_batch_size}, {max_per_replica_batch_size}"
        )
    if global_batch_size % replicas:
        raise ValueError(
            f"--global_batch_size={global_batch_size} does not divide across {replicas} "
            "replicas; use a multiple of the replica count."
        )
    per_replica_total = global_batch_size // replicas
    steps = -(-per_replica_total // max_per_replica_batch_size)
    while per_replica_total % steps:
        steps += 1
    return BatchPlan(global_batch_size, replicas, steps, per_replica_total // steps)
