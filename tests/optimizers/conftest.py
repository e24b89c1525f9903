"""The ways a step is applied; the numerical test modules run under each."""

import functools

import keras
import pytest

from tf_lamb.optimizers import layerwise

PATHS = ["fused", "generic"] + (["fused-graph"] if keras.backend.backend() == "tensorflow" else [])


@pytest.fixture(params=PATHS)
def optimizer_path(request, monkeypatch):
    """``fused``: the default on this Keras (one call for all layers, XLA on TensorFlow);
    ``generic``: Keras' per-variable ``update_step`` loop, what an untested Keras version
    gets (on TensorFlow, eager: TensorFlow's fused kernels, see ``tf_lamb.optimizers.kernels``);
    ``fused-graph`` (TensorFlow): the fused step with ``jit_compile=False`` (the kernels
    again, in one call). Optimizers built inside the test take the path."""
    if request.param == "generic":
        monkeypatch.setattr(layerwise, "fused_supported", lambda: False)
    else:
        assert layerwise.fused_supported(), "the fused path is not active on this Keras"
    if request.param == "fused-graph":
        init = layerwise.LayerwiseOptimizer.__init__

        @functools.wraps(init)
        def without_xla(self, *args, **kwargs):
            kwargs.setdefault("jit_compile", False)
            init(self, *args, **kwargs)

        monkeypatch.setattr(layerwise.LayerwiseOptimizer, "__init__", without_xla)
    return request.param
