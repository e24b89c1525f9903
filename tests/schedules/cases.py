"""One schedule of every kind and form, with non-default settings, for the tests that
check properties every schedule must have (tracing, config round trips)."""

from tf_lamb import schedules


def every_kind():
    """Fresh instances: polynomial both ways, LEGW with each decay and from `from_base`,
    LANS directly and from fractions, Goyal exact form."""
    return [
        schedules.PolynomialDecayWithWarmup(6e-3, 120, 34, power=0.5, name="nvidia_bert"),
        schedules.PolynomialDecayWithWarmup(
            17.0, 90, 5, power=2.0, end_learning_rate=1e-4, decay_from_warmup_end=True
        ),
        schedules.LEGW(0.04, 24, 150),
        schedules.LEGW(0.04, 24, 150, "cosine", end_learning_rate=1e-3),
        schedules.LEGW(0.04, 24, 150, "constant"),
        schedules.LEGW(0.04, 24, 150, "step", boundaries=[60, 120], decay_factor=0.2),
        schedules.LEGW.from_base(
            256, 0.1, 0.5, 1024, 20, 9, decay="step", boundaries_epochs=[4, 7.5]
        ),
        schedules.WarmupConstantDecay(1e-3, 100, 5, 25, end_learning_rate=1e-5),
        schedules.WarmupConstantDecay.from_fractions(2e-3, 80, name="lans"),
        schedules.GoyalStepDecay(3.2, 4, 5, (30, 60, 80), 0.1, 0.1),
    ]


def probe_steps(schedule):
    """Steps through warmup, plateau and decay, at the ends of each and past the end."""
    total = getattr(schedule, "total_steps", None) or 4 * 90
    steps = set(range(0, total + 10, 3)) | {0, 1, total - 1, total, 10 * total}
    warmup = schedule.warmup_steps
    steps |= {max(warmup - 1, 0), warmup, warmup + 1}
    return sorted(steps)
