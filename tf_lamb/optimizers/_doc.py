"""The constructor arguments the layer-wise optimizers share, documented once."""

#: The constructor arguments every layer-wise optimizer takes, documented once; each
#: optimizer's docstring holds them in place of ``{{layerwise_args}}``.
LAYERWISE_ARGS = """exclude_from_weight_decay: layers that get no weight decay: a regex string
            matched with ``re.search`` on the variable path
            (``"encoder/layer_0/LayerNorm/gamma"``) or name, a callable
            ``f(variable) -> bool``, a variable, or a list of these; e.g. BERT's
            ``["LayerNorm", "layer_norm", "bias"]``. Default None.
        exclude_from_layer_adaptation: the same forms; layers whose trust ratio is fixed at 1.
            ``None`` (default) means the weight-decay list (tfa's and Google's rule); ``[]``
            adapts every layer (NVIDIA's NVLAMB).
        weight_norm_bounds: ``(lower, upper)`` of ``phi(||w||) = clip(||w||, lower, upper)``,
            LAMB paper Sec. 3.1; ``upper=None`` is unbounded. Default ``(0.0, None)``:
            ``phi`` is the identity, as in the authors' code.
        max_trust_ratio: optional float > 0 capping the trust ratio (LAMBC / LARC's clip at
            a constant). Default None.
        fused: bool or None. True: one call updates every layer (the fused step) and records
            ``layer_statistics()``; False: Keras' per-variable ``update_step`` loop. None
            (default): fused where this Keras has the private hooks it overrides
            (``tf_lamb.optimizers.seams.fused_supported()``). Both give the same numbers.
            True on a Keras without the hooks raises ValueError.
        jit_compile: bool, TensorFlow only: XLA-compile the fused step (per device under
            ``tf.distribute``). Default True. False runs it in graph mode. On JAX the
            caller's ``jax.jit`` compiles the step.
        step_plan: the fast paths a step may take (``docs/design.md``). None (default): those
            chosen for this runtime; ``"reference"``: none, the plain ``keras.ops``
            update; a dict overriding fields of ``tf_lamb.optimizers.plan.StepPlan``, e.g.
            ``{"ordered": False}``. Every choice gives the same numbers up to float rounding.
        **kwargs: the ``keras.optimizers.Optimizer`` arguments: ``name``,
            ``global_clipnorm`` (applied to the global batch's gradient after the
            cross-replica sum and gradient accumulation, see
            ``tf_lamb.optimizers.ClipAfterSum``; 1.0 is NVLAMB's pre-normalization),
            ``clipnorm``, ``clipvalue``, ``use_ema``, ``ema_momentum``,
            ``loss_scale_factor``, ``gradient_accumulation_steps``."""


def with_layerwise_args(cls):
    """Class decorator: puts :data:`LAYERWISE_ARGS` into ``cls``' docstring."""
    cls.__doc__ = cls.__doc__.replace("{{layerwise_args}}", LAYERWISE_ARGS)
    return cls
