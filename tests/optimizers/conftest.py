"""The two ways a step is applied; the numerical test modules run under both."""

import pytest

from tf_lamb.optimizers import layerwise


@pytest.fixture(params=["fused", "generic"])
def optimizer_path(request, monkeypatch):
    """``fused``: the default on this Keras (one call for all layers, XLA on TensorFlow);
    ``generic``: Keras' per-variable ``update_step`` loop, what an untested Keras version
    gets. Optimizers built inside the test take the path."""
    if request.param == "generic":
        monkeypatch.setattr(layerwise, "fused_supported", lambda: False)
    else:
        assert layerwise.fused_supported(), "the fused path is not active on this Keras"
    return request.param
