"""The ways a step is applied; the numerical test modules run under each."""

import functools

import keras
import pytest

from tf_lamb.optimizers import layerwise, seams

PATHS = ["fused", "generic", "reference"] + (
    ["fused-graph"] if keras.backend.backend() == "tensorflow" else []
)


@pytest.fixture(params=PATHS)
def optimizer_path(request, monkeypatch):
    """``fused``: the default on this Keras (one call for all layers, XLA on TensorFlow);
    ``generic``: Keras' per-variable ``update_step`` loop (``fused=False``; what a Keras
    without the hooks the fused step overrides gets; on TensorFlow, eager: TensorFlow's fused
    kernels, see ``tf_lamb.optimizers.kernels``); ``fused-graph`` (TensorFlow): the fused step
    with ``jit_compile=False`` (the kernels again, in one call); ``reference``: the fused step
    on the reference plan (``step_plan="reference"``, no fast path). Optimizers built inside
    the test take the path."""
    assert seams.fused_supported(), seams.describe_missing()
    defaults = {
        "generic": {"fused": False},
        "fused-graph": {"jit_compile": False},
        "reference": {"step_plan": "reference"},
    }
    if request.param in defaults:
        init = layerwise.LayerwiseOptimizer.__init__

        @functools.wraps(init)
        def on_path(self, *args, **kwargs):
            for key, value in defaults[request.param].items():
                kwargs.setdefault(key, value)
            init(self, *args, **kwargs)

        monkeypatch.setattr(layerwise.LayerwiseOptimizer, "__init__", on_path)
    return request.param
