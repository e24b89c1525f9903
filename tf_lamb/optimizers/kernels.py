"""TensorFlow's fused training kernels, for a layer-wise step that runs in plain graph mode.

Without XLA, TensorFlow runs each elementwise op as one kernel over the whole tensor, so a
LAMB step written with ``keras.ops`` streams a layer through memory about 18 times
(benchmarks/README.md). TensorFlow's own Adam kernel (``ResourceApplyAdam``; on CPU it walks
the four tensors once, block by block, on every core) updates both moments and writes
Adam's direction in one pass. Pointed at a scratch variable that starts at ``decay * w``,
with its learning rate at -1 and its bias corrections off, it leaves in that variable the
layer's direction ``decay * w + m / (sqrt(v) + epsilon)``, whose norm the trust ratio
needs before the layer can move; ``ResourceApplyGradientDescent`` then moves the layer in
one more pass. The scratch variable is anonymous: it lives as long as the tensor holding
its handle, one layer's size.

LANS' second direction ``g / (sqrt(v) + epsilon)`` comes from TensorFlow's Adagrad kernel
with its accumulator, the second moment, left as it is (:func:`scaled_direction`).

Classic LARS moves a layer with ``ResourceApplyMomentum`` (learning rate 1, the trust ratio
already in the step): its momentum and weights in one pass.

These kernels are TensorFlow ops outside XLA's reach (``VarHandleOp`` does not compile), so
they are used only where :func:`in_xla_context` is False (not inside
``tf.function(jit_compile=True)`` or a TPU program); there the step is written with
``keras.ops`` and XLA fuses it.
"""

import keras
import numpy as np

#: Variable dtypes the kernels take here: the 16-bit ones keep the ``keras.ops`` form.
DTYPES = ("float32", "float64")


def in_xla_context():
    """Whether TensorFlow is tracing into an XLA computation (``jit_compile=True`` or a TPU
    program) at this point. True when TensorFlow's private helper is missing, so that an
    untested TensorFlow never gets a kernel XLA cannot compile."""
    try:
        import tensorflow as tf
        from tensorflow.python.ops import control_flow_util
    except ImportError:
        return True
    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


def rounded(beta, dtype):
    """``beta`` as the kernel holds it: rounded to ``dtype`` (a string), as a Python float.

    The kernel computes ``1 - beta`` in the variable's dtype; in float32 ``1 - 0.999`` comes
    out 1.3e-5 (relative) short. Bias corrections taken with the rounded value make the
    kernel's moments exactly those of Adam with that beta (0.999 and its float32 rounding
    differ by 1.3e-8), the first step included.
    """
    return float(np.asarray(beta, dtype=keras.backend.standardize_dtype(dtype)))


def _scalar(x, dtype):
    """A Python number or a tensor as a scalar tensor of ``dtype``; a Python float goes to
    ``dtype`` directly (``tf.cast`` would round it to float32 first)."""
    import tensorflow as tf

    return tf.cast(x, dtype) if tf.is_tensor(x) else tf.constant(x, dtype)


def _handle(variable):
    """The resource handle of a variable: a ``keras.Variable`` on TensorFlow or one device's
    ``tf.Variable`` under ``tf.distribute``."""
    return variable.handle


def adam_direction(variable, m, v, gradient, beta_1, beta_2, epsilon, decay=None):
    """Updates Adam's moments and returns ``decay * w + m / (sqrt(v) + epsilon)``, one pass.

    ``m <- m + (1 - beta_1) (g - m)`` and ``v <- v + (1 - beta_2) (g**2 - v)`` (TensorFlow's
    Adam kernel; equal to ``beta m + (1 - beta) g`` up to float rounding), then the direction
    from the new moments, without bias correction (fold it into ``epsilon`` and a scale, as
    :mod:`tf_lamb.optimizers.tf_graph` does).

    Args:
        variable: the layer ``w``, a float32 or float64 variable of any shape.
        m, v: its first and second moment, variables of the same shape and dtype (updated).
        gradient: dense tensor of the same shape and dtype.
        beta_1, beta_2: Python floats in (0, 1).
        epsilon: scalar (Python float or tensor) > 0, added to ``sqrt(v)``.
        decay: optional scalar; ``None`` starts the direction at 0 instead of ``decay * w``.

    Returns:
        A tensor of ``w``'s shape and dtype.
    """
    import tensorflow as tf

    scratch, dtype = _scratch(variable, decay)
    zero = tf.zeros([], dtype)
    tf.raw_ops.ResourceApplyAdam(
        var=scratch,
        m=_handle(m),
        v=_handle(v),
        beta1_power=zero,  # No bias correction inside: the kernel's step size is then lr.
        beta2_power=zero,
        lr=-tf.ones([], dtype),  # var - lr * m / (sqrt(v) + eps) = start + direction.
        beta1=tf.constant(beta_1, dtype),
        beta2=tf.constant(beta_2, dtype),
        epsilon=_scalar(epsilon, dtype),
        grad=gradient,
    )
    return tf.raw_ops.ReadVariableOp(resource=scratch, dtype=dtype)


def scaled_direction(variable, v, gradient, scale, epsilon, decay=None):
    """Returns ``decay * w + scale * g / (sqrt(v) + epsilon)``, one pass, ``v`` unchanged.

    TensorFlow's Adagrad kernel (``ResourceApplyAdagradV2``) with ``update_slots=False``,
    its accumulator the second moment ``v`` and its learning rate ``-scale``: LANS' second
    direction, the gradient over Adam's denominator, from the moment that Adam's kernel
    (:func:`adam_direction`) updated.

    Args:
        variable: the layer ``w``, a float32 or float64 variable of any shape.
        v: its second moment, a variable of the same shape and dtype (read only).
        gradient: dense tensor of the same shape and dtype.
        scale: scalar (Python float or tensor), e.g. LANS' ``1 / (||g|| + epsilon)``.
        epsilon: scalar (Python float or tensor) > 0, added to ``sqrt(v)``.
        decay: optional scalar; ``None`` starts the direction at 0 instead of ``decay * w``.

    Returns:
        A tensor of ``w``'s shape and dtype.
    """
    import tensorflow as tf

    scratch, dtype = _scratch(variable, decay)
    tf.raw_ops.ResourceApplyAdagradV2(
        var=scratch,
        accum=_handle(v),
        lr=-_scalar(scale, dtype),  # var - lr * g / (sqrt(v) + eps) = start + direction.
        epsilon=_scalar(epsilon, dtype),
        grad=gradient,
        update_slots=False,
    )
    return tf.raw_ops.ReadVariableOp(resource=scratch, dtype=dtype)


def _scratch(variable, decay):
    """An anonymous variable of ``variable``'s shape holding ``decay * w`` (0 for ``None``),
    in which a kernel accumulates a direction; returns it and the dtype."""
    import tensorflow as tf
    from tensorflow.python.eager import context

    w = tf.convert_to_tensor(variable)
    start = tf.zeros_like(w) if decay is None else _scalar(decay, w.dtype) * w
    scratch = tf.raw_ops.VarHandleOp(
        dtype=w.dtype, shape=w.shape, shared_name=context.anonymous_name()
    )
    tf.raw_ops.AssignVariableOp(resource=scratch, value=start)
    return scratch, w.dtype


def apply_step(variable, factor, direction):
    """``w <- w - factor * direction`` in one pass (``ResourceApplyGradientDescent``).

    Args:
        variable: the layer, a float32 or float64 variable.
        factor: scalar tensor or float, e.g. ``lr * trust_ratio * scale``.
        direction: tensor of the variable's shape and dtype.
    """
    import tensorflow as tf

    tf.raw_ops.ResourceApplyGradientDescent(
        var=_handle(variable), alpha=_scalar(factor, direction.dtype), delta=direction
    )


def momentum_step(variable, momentum, step, beta, nesterov):
    """``m <- beta * m + step``, then ``w <- w - m`` (or, Nesterov, ``w - (beta * m + step)``
    with the new ``m``), in one pass (``ResourceApplyMomentum`` with learning rate 1).

    Args:
        variable: the layer, a float32 or float64 variable.
        momentum: its momentum slot, a variable of the same shape and dtype (updated).
        step: dense tensor of the same shape and dtype, e.g. LARS' ``local_lr * (g + wd w)``.
        beta: Python float in [0, 1), the momentum.
        nesterov: bool.
    """
    import tensorflow as tf

    dtype = step.dtype
    tf.raw_ops.ResourceApplyMomentum(
        var=_handle(variable),
        accum=_handle(momentum),
        lr=tf.ones([], dtype),
        grad=step,
        momentum=tf.constant(beta, dtype),
        use_nesterov=bool(nesterov),
    )
