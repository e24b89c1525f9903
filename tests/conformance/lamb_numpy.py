"""The NumPy LAMB that tfa's and Model Garden's LAMB tests compare against (Model Garden's
test file carries tfa's function unchanged), re-implemented in float64 from its formula, and
their beta-power check."""

import numpy as np
from keras import ops


def lamb_update_numpy(
    param, g_t, t, m, v, lr=0.001, lamb_wd=0.0, beta1=0.9, beta2=0.999, epsilon=1e-6
):
    """LAMB's step ``t`` (0-based) on one tensor, in float64, with the keyword names those
    tests call it with; returns the new ``(param, m, v)``."""
    w = np.asarray(param, np.float64)
    g = np.asarray(g_t, np.float64)
    step = t + 1
    moments = (beta1 * m + (1.0 - beta1) * g, beta2 * v + (1.0 - beta2) * np.square(g))
    m_hat = moments[0] / (1.0 - beta1**step)
    v_hat = moments[1] / (1.0 - beta2**step)
    direction = m_hat / (np.sqrt(v_hat) + epsilon) + lamb_wd * w
    norms = np.sqrt(np.sum(np.square(w))), np.sqrt(np.sum(np.square(direction)))
    trust = norms[0] / norms[1] if norms[0] > 0 and norms[1] > 0 else 1.0
    return w - lr * trust * direction, moments[0], moments[1]


def get_beta_accumulators(opt, dtype):
    """``beta ** (iterations + 1)`` in ``dtype``, from the optimizer's own state."""
    local_step = ops.cast(opt.iterations + 1, dtype)
    beta_1_power = ops.power(ops.cast(opt.beta_1, dtype), local_step)
    beta_2_power = ops.power(ops.cast(opt.beta_2, dtype), local_step)
    return beta_1_power, beta_2_power
