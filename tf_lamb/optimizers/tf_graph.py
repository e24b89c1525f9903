"""TensorFlow outside XLA: layers updated with TensorFlow's fused training kernels, and the
fused step run in memory-bounded groups (plan fields ``kernels`` and ``groups``).

Without XLA each ``keras.ops`` op is one kernel over the whole tensor, so the reference update
streams a layer through memory many times and the graph executor may run every layer's ops at
once. :func:`update_layer` instead updates a float32 or float64 layer of LAMB and LANS (with
``"inside"`` or ``"l2"`` weight decay, no Nesterov, both betas > 0) or classic LARS (the exact
classes: a subclass may change the direction) with TensorFlow's own training kernels (:mod:`tf_lamb.optimizers.kernels`), a pass or two
per layer, and :func:`memory_groups` bounds how many layers run at once. Adopted from the
TensorFlow rows ``*/fused`` and ``*/generic`` of ``benchmarks/optimizer_step.py`` (graph mode
on a CPU); on GPUs unmeasured and off (``docs/design.md``). Each update here is tested equal
to the reference update against the same float64 reference.
"""

import keras
from keras import ops

from tf_lamb.optimizers import kernels
from tf_lamb.optimizers.clipping import dense_gradient
from tf_lamb.optimizers.terms import Direction


def memory_groups(sizes, budget):
    """Splits layers, in order, into consecutive groups of at most ``budget`` in all.

    Graph mode runs every op as soon as its inputs are ready, so a step over many layers may
    hold every layer's temporaries at once. The fused step runs one group after the other and
    the layers within a group concurrently: it then holds about one group's temporaries, with
    a few barriers rather than one per layer.

    Args:
        sizes: list of int, each layer's size in bytes.
        budget: int > 0; a layer larger than it is a group of its own.

    Returns:
        A list of lists of positions into ``sizes``, covering them in order.
    """
    groups, total = [[]], 0
    for position, size in enumerate(sizes):
        if groups[-1] and total + size > budget:
            groups.append([])
            total = 0
        groups[-1].append(position)
        total += size
    return groups


def update_layer(optimizer, step, layer):
    """One layer's update on TensorFlow's kernels, or None where they do not apply (a 16-bit
    layer, an optimizer or a setting without a kernel form; the reference update runs then).

    Args:
        optimizer: the :class:`~tf_lamb.optimizers.LayerwiseOptimizer`.
        step, layer: as :meth:`~tf_lamb.optimizers.LayerwiseOptimizer._update_layer` takes them.

    Returns:
        ``(||w||, [||u_k||], [ratio_k])`` or None.
    """
    from tf_lamb.optimizers.lamb import LAMB
    from tf_lamb.optimizers.lans import LANS
    from tf_lamb.optimizers.lars import LARS

    update = {LAMB: _lamb, LANS: _lans, LARS: _lars}.get(type(optimizer))
    dtype = keras.backend.standardize_dtype(layer.variable.dtype)
    if update is None or dtype not in kernels.DTYPES:
        return None
    return update(optimizer, step, layer, dtype)


def _lamb(opt, step, layer, dtype):
    """LAMB: the moments and the direction in one pass (Adam's kernel), the move in another."""
    if opt.nesterov or not (opt.beta_1 and opt.beta_2) or opt.weight_decay_mode == "decoupled":
        return None
    wd = opt._decay_rates[layer.index]
    g = dense_gradient(layer.gradient, dtype)
    if wd and opt.weight_decay_mode == "l2":
        g = g + wd * ops.convert_to_tensor(layer.variable)
    m, v = layer.slots
    betas = kernels.rounded(opt.beta_1, dtype), kernels.rounded(opt.beta_2, dtype)
    scale, _, epsilon = step.scalar(
        ("lamb-kernel", dtype),
        lambda: bias_corrections(step.t(dtype), *betas, opt.epsilon, opt.bias_correction),
    )
    decay = wd / scale if wd and opt.weight_decay_mode == "inside" else None
    u = kernels.adam_direction(layer.variable, m, v, g, *betas, epsilon, decay)
    return _apply(opt, step, layer, dtype, [(u, scale, 1.0)])


def _lans(opt, step, layer, dtype):
    """LANS: the moments and ``m / d`` in one pass (Adam's kernel), ``g / d`` in another
    (Adagrad's, its accumulator left as it is), with the gradient's normalization as that
    kernel's scale, so the normalized gradient lives only until the first."""
    if not (opt.beta_1 and opt.beta_2) or opt.weight_decay_mode == "decoupled":
        return None
    wd, variable = opt._decay_rates[layer.index], layer.variable
    g = dense_gradient(layer.gradient, dtype)
    inverse_norm = 1.0
    if opt.normalize_grad:
        inverse_norm = ops.reciprocal(ops.cast(step.norm(g), dtype) + opt.epsilon)
    normalized = g * inverse_norm if opt.normalize_grad else g
    if wd and opt.weight_decay_mode == "l2":
        normalized = normalized + wd * ops.convert_to_tensor(variable)
        g, inverse_norm = normalized, 1.0
    m, v = layer.slots
    betas = kernels.rounded(opt.beta_1, dtype), kernels.rounded(opt.beta_2, dtype)
    m_scale, g_scale, epsilon = step.scalar(
        ("lans-kernel", dtype),
        lambda: bias_corrections(step.t(dtype), *betas, opt.epsilon, opt.bias_correction),
    )
    inside = wd and opt.weight_decay_mode == "inside"
    r = kernels.adam_direction(
        variable, m, v, normalized, *betas, epsilon, wd / m_scale if inside else None
    )
    c = kernels.scaled_direction(
        variable, v, g, inverse_norm, epsilon, wd / g_scale if inside else None
    )
    terms = [(r, m_scale, opt.beta_1), (c, g_scale, 1.0 - opt.beta_1)]
    return _apply(opt, step, layer, dtype, terms)


def _apply(opt, step, layer, dtype, terms):
    """Each term ``(u, scale, coefficient)`` moves the layer in its own pass
    (``ResourceApplyGradientDescent``), once every direction is built from the same ``w``."""
    lr = step.learning_rate(dtype)
    adapts = opt._adapts[layer.index]
    weight_norm = step.norm(layer.variable) if adapts else 0.0
    norms, ratios, factors = [], [], []
    for u, scale, coefficient in terms:
        factor = lr * (coefficient * scale)
        if adapts:
            norms.append(step.norm(u) * scale)
            ratio = opt._trust_ratio(layer.index, weight_norm, norms[-1], Direction(u), 0.0, lr)
            ratios.append(ratio)
            factor = factor * ratios[-1]
        factors.append(factor)
    for factor, (u, _, _) in zip(factors, terms):
        kernels.apply_step(layer.variable, factor, u)
    return weight_norm, norms, ratios


def _lars(opt, step, layer, dtype):
    """Classic LARS: the momentum and the weights in one pass (the momentum kernel)."""
    if opt.form != "classic":
        return None
    wd, variable = opt._decay_rates[layer.index], layer.variable
    lr = step.learning_rate(dtype)
    g = dense_gradient(layer.gradient, dtype)
    decayed = g + wd * ops.convert_to_tensor(variable) if wd else g
    local_lr, stats = lr, (0.0, [], [])
    if opt._adapts[layer.index]:
        weight_norm, gradient_norm = step.norm(variable), step.norm(g)
        direction = Direction(g, trust_coefficient=opt.eta)
        offset = wd * weight_norm + opt.epsilon
        ratio = opt._trust_ratio(layer.index, weight_norm, gradient_norm, direction, offset, lr)
        local_lr = lr * ops.cast(ratio, dtype)
        stats = (weight_norm, [gradient_norm], [ratio])
    kernels.momentum_step(variable, layer.slots[0], local_lr * decayed, opt.momentum, opt.nesterov)
    return stats


def bias_corrections(t, beta_1, beta_2, epsilon, enabled=True):
    """Adam's bias corrections as scalars kept out of the tensor arithmetic, for kernels that
    have none.

    With ``c = 1 - beta**t``, ``m_hat / (sqrt(v_hat) + epsilon)`` equals
    ``sqrt(c_2) / c_1 * m / (sqrt(v) + epsilon * sqrt(c_2))`` and ``g / (sqrt(v_hat) +
    epsilon)`` equals ``sqrt(c_2) * g / (sqrt(v) + epsilon * sqrt(c_2))`` (Kingma and Ba
    2015, Sec. 2, the "more efficient" ordering).

    Args:
        t: the 1-based step, a float tensor.
        beta_1, beta_2: Python floats in [0, 1).
        epsilon: Python float > 0.
        enabled: False gives ``(1, 1, epsilon)`` (no bias correction).

    Returns:
        ``(sqrt(c_2) / c_1, sqrt(c_2), epsilon * sqrt(c_2))``.
    """
    from tf_lamb.optimizers.lamb import one_minus_power

    if not enabled:
        return 1.0, 1.0, epsilon
    root_c2 = ops.sqrt(one_minus_power(beta_2, t))
    return root_c2 / one_minus_power(beta_1, t), root_c2, epsilon * root_c2
