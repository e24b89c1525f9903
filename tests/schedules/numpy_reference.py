"""float64 NumPy/Python references for the schedules, written from the formulas in the
papers and the brief, step by step with plain `if`s; they share no code with `tf_lamb`."""

import math

import numpy as np


def _ramp(step, warmup_steps, peak, start=0.0):
    return start + (peak - start) * step / warmup_steps


def polynomial_with_warmup(step, peak, total, warmup, power, end, from_warmup_end):
    if step < warmup:
        return _ramp(step, warmup, peak)
    if step >= total:
        return end
    if from_warmup_end:
        progress = (step - warmup) / (total - warmup)
    else:
        progress = step / total
    return end + (peak - end) * (1.0 - progress) ** power


def legw(step, peak, warmup, total, decay, power, end, boundaries, factor):
    if step < warmup:
        return _ramp(step, warmup, peak)
    if decay == "constant":
        return peak
    if decay == "step":
        value = peak
        for boundary in boundaries:
            if step >= boundary:
                value *= factor
        return value
    if step >= total:
        return end
    progress = (step - warmup) / (total - warmup)
    if decay == "polynomial":
        return end + (peak - end) * (1.0 - progress) ** power
    assert decay == "cosine"
    return end + (peak - end) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_constant_decay(step, peak, total, warmup, constant, end):
    if step < warmup:
        return _ramp(step, warmup, peak)
    if step < warmup + constant:
        return peak
    if step >= total:
        return end
    progress = (step - warmup - constant) / (total - warmup - constant)
    return end + (peak - end) * (1.0 - progress)


def _nearest_step(epochs, steps_per_epoch):
    return math.floor(epochs * steps_per_epoch + 0.5)  # halves round up


def goyal(step, peak, steps_per_epoch, warmup_epochs, boundaries_epochs, factor, start):
    warmup = _nearest_step(warmup_epochs, steps_per_epoch)
    if step < warmup:
        return _ramp(step, warmup, peak, start)
    drops = sum(step >= _nearest_step(e, steps_per_epoch) for e in boundaries_epochs)
    return peak * factor**drops


def curve(function, steps, **kwargs):
    return np.array([function(int(step), **kwargs) for step in steps], dtype=np.float64)
