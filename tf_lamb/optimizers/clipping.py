"""Global gradient clipping of the global batch's gradient, for any Keras optimizer.

``global_clipnorm`` (NVLAMB's gradient pre-normalization, BERT's clip at 1.0) means: scale the
whole step's gradient ``G`` by ``1 / max(1, ||G|| / global_clipnorm)``. Keras clips in
``apply()``, before two things that change ``G``: TensorFlow's cross-replica sum (under
``MirroredStrategy`` each replica would clip its own partial sum, so the step would depend on
the replica count) and Keras' own ``gradient_accumulation_steps`` (each micro-batch would be
clipped, not their sum). :class:`ClipAfterSum` moves the clip behind both.
"""

import keras
from keras import ops

from tf_lamb.optimizers import seams


def dense_gradient(gradient, dtype):
    """The gradient as a dense tensor of ``dtype``.

    Embedding gradients arrive as ``tf.IndexedSlices`` on the TensorFlow backend and may be
    ``jax.experimental.sparse.BCOO`` arrays on JAX. A layer's trust ratio needs the norm of
    its whole direction, so the moments are updated densely, as tfa's LAMB did (there is no
    lazy, row-wise LAMB); repeated rows are summed.
    """
    if hasattr(gradient, "todense"):  # JAX's BCOO
        gradient = gradient.todense()
    elif hasattr(gradient, "indices") and hasattr(gradient, "dense_shape"):
        indices = ops.expand_dims(gradient.indices, -1)
        gradient = ops.scatter(indices, gradient.values, gradient.dense_shape)
    return ops.cast(gradient, dtype)


class ClipAfterSum:
    """Mixin, listed before a ``keras.optimizers.Optimizer`` subclass: its ``global_clipnorm``
    clips the gradient of the global batch, after the cross-replica sum (TensorFlow) and after
    gradient accumulation, so a step is the same on one device and on several replicas.

    ``class AdamW(ClipAfterSum, keras.optimizers.AdamW): pass`` gives Keras' AdamW this
    behaviour; :class:`tf_lamb.optimizers.LayerwiseOptimizer` has it. It overrides private
    Keras methods (``_clip_gradients``, ``_all_reduce_sum_gradients``,
    ``_backend_update_step``), checked by :func:`tf_lamb.optimizers.seams.clip_supported`.
    ``clipnorm`` and ``clipvalue`` (per variable) are left to Keras.

    Raises:
        ValueError: at construction, ``global_clipnorm`` is set and this Keras lacks one of
            those methods (clipping would silently move before the sum); the message names
            the missing hooks.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.global_clipnorm and not seams.clip_supported():
            raise ValueError(
                "Argument `global_clipnorm` clips the global batch's gradient after the "
                f"cross-replica sum and gradient accumulation, which needs hooks this Keras "
                f"lacks. {seams.describe_missing(clip_only=True)} Received: "
                f"global_clipnorm={self.global_clipnorm}. Pass global_clipnorm=None (and clip "
                "in your own step), or use a Keras release that tf_lamb's tests pass on."
            )

    def _clip_gradients(self, grads):
        if not self.global_clipnorm:
            return super()._clip_gradients(grads)
        return grads  # Clipped after the sum (below).

    def _clip_by_global_norm(self, grads):
        """``g / max(1, ||G|| / global_clipnorm)`` with ``||G||`` over all gradients."""
        if not self.global_clipnorm:
            return grads
        grads = [None if g is None else dense_gradient(g, g.dtype) for g in grads]
        norm = ops.sqrt(sum(ops.sum(ops.square(ops.cast(g, "float32"))) for g in grads if g is not None))
        scale = 1.0 / ops.maximum(1.0, norm / self.global_clipnorm)
        return [None if g is None else g * ops.cast(scale, g.dtype) for g in grads]

    def _all_reduce_sum_gradients(self, grads_and_vars):
        """TensorFlow backend only: the cross-replica sum, then global clipping."""
        reduced = list(super()._all_reduce_sum_gradients(grads_and_vars))
        clipped = self._clip_by_global_norm([g for g, _ in reduced])
        return list(zip(clipped, [v for _, v in reduced]))

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        # On TensorFlow the clip happens in the all-reduce above; the other backends have no
        # all-reduce inside the optimizer, and this is where accumulated gradients arrive.
        if keras.backend.backend() != "tensorflow":
            grads = self._clip_by_global_norm(grads)
        return super()._backend_update_step(grads, trainable_variables, learning_rate)
