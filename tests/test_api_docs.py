"""The API reference is complete: every public object is on an API page of the site, and
every argument of its signature is documented in its docstring's ``Args:`` (as Sphinx's
napoleon reads it), with a source under ``References:``."""

import inspect
import os
import re

import pytest
from sphinx.ext.napoleon import Config
from sphinx.ext.napoleon.docstring import GoogleDocstring

import tf_lamb
from tf_lamb import callbacks, optimizers, schedules

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Arguments every Keras object takes and Keras documents (``*args``: a mixin's or an
#: exception's, passed on as they are).
KERAS_ARGUMENTS = {"self", "cls", "name", "args", "kwargs"}
#: Public objects that are not the papers' algorithms, so have no paper to cite.
NO_SOURCE = {"TrustRatioMonitor", "find_suspect_layers", "check_summaries", "ClipAfterSum",
             "StepPlan", "fused_supported", "missing_hooks", "SummariesNotAvailableError",
             "layerwise_optimizer"}


def public_objects():
    """``(qualified name, object)``: every class and function the public modules export,
    the step plan, the Keras-hook checks and ``LEGW.from_base``."""
    found = {}
    for module, prefix in ((tf_lamb, "tf_lamb"), (schedules, "tf_lamb.schedules"),
                           (callbacks, "tf_lamb.callbacks"),
                           (optimizers, "tf_lamb.optimizers")):
        for name in module.__all__:
            obj = getattr(module, name)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and obj not in found.values():
                found[f"{prefix}.{name}"] = obj
    found["tf_lamb.schedules.LEGW.from_base"] = schedules.LEGW.from_base
    found["tf_lamb.optimizers.plan.StepPlan"] = optimizers.plan.StepPlan
    found["tf_lamb.optimizers.seams.fused_supported"] = optimizers.seams.fused_supported
    found["tf_lamb.optimizers.seams.missing_hooks"] = optimizers.seams.missing_hooks
    return sorted(found.items())


def documented_parameters(doc):
    """``{argument: its description}`` as napoleon renders the ``Args:`` section."""
    rendered = str(GoogleDocstring(inspect.cleandoc(doc or ""), Config()))
    found = {}
    for names, text in re.findall(r"^:param ([^:]+):(.*)$", rendered, re.M):
        for name in names.split(","):
            found[name.strip().lstrip("*")] = text.strip()
    return found


def api_pages():
    text = ""
    for name in sorted(os.listdir(os.path.join(ROOT, "docs", "api"))):
        with open(os.path.join(ROOT, "docs", "api", name), encoding="utf-8") as f:
            text += f.read()
    return text


def test_the_public_api_is_the_one_documented():
    names = [qualified for qualified, _ in public_objects()]
    assert "tf_lamb.LAMB" in names and "tf_lamb.schedules.LEGW" in names
    assert "tf_lamb.callbacks.TrustRatioMonitor" in names and len(names) >= 20


def _cases():
    return [pytest.param(qualified, obj, id=qualified) for qualified, obj in public_objects()]


@pytest.mark.parametrize("qualified,obj", _cases())
def test_every_public_object_is_on_an_api_page(qualified, obj):
    pages = api_pages()
    candidates = {qualified, f"{obj.__module__}.{obj.__qualname__}"}
    owner, _, member = qualified.rpartition(".")
    directive = re.compile(r"^\.\. auto\w+:: (\S+)$", re.M)
    listed = set(directive.findall(pages))
    members = re.findall(r"\.\. auto\w+:: (\S+)\n((?:   :\w[^\n]*\n)*)", pages)
    as_member = any(target == owner and re.search(rf":members:.*\b{member}\b", options)
                    for target, options in members)
    assert candidates & listed or as_member, f"{qualified} is on no page of docs/api/"


@pytest.mark.parametrize("qualified,obj", _cases())
def test_every_argument_is_documented_with_a_source(qualified, obj):
    documented = documented_parameters(obj.__doc__)
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        parameters = inspect.signature(target).parameters
    except ValueError:  # a C-level __init__ (an exception class): no arguments of its own
        parameters = {}
    missing = [p for p in parameters if p not in KERAS_ARGUMENTS and not documented.get(p)]
    assert not missing, f"{qualified}: Args lacks {missing}"
    short = qualified.split(".")[-1]
    if short not in NO_SOURCE and qualified != "tf_lamb.schedules.LEGW.from_base":
        assert "References:" in (obj.__doc__ or ""), f"{qualified} cites no source"


def test_the_check_fails_on_an_undocumented_argument():
    def scaled(base_learning_rate, batch_size):
        """A rule.

        Args:
            base_learning_rate: float > 0.
        """

    documented = documented_parameters(scaled.__doc__)
    assert set(documented) == {"base_learning_rate"}
    assert "batch_size" not in documented
