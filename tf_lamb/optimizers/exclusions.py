"""Exclusion lists: which layers get no weight decay, or no layer-wise adaptation."""

import re

import keras


class Exclusions:
    """Which layers a rule leaves out: regexes, callables or variables, matched at build time.

    A regex matches when ``re.search`` finds it in the variable's ``path``
    (``"encoder/layer_0/LayerNorm/gamma"``) or its ``name``. Matching the path is what makes
    BERT's classic ``["LayerNorm", "layer_norm", "bias"]`` work on every Keras backend: Keras'
    own ``exclude_from_weight_decay`` matches ``variable.name``, which is only ``"gamma"`` on
    JAX and PyTorch.

    Args:
        spec: ``None`` (nothing excluded), a regex string, a callable ``f(variable) -> bool``,
            or a list mixing regex strings, callables and ``keras.Variable`` objects (matched
            by identity).
        argument: the constructor argument name, for error messages.

    Raises:
        ValueError: an item is neither a string, a callable nor a variable, or a regex does
            not compile.
    """

    def __init__(self, spec, argument):
        self.spec = spec
        items = [] if spec is None else [spec] if isinstance(spec, (str, dict)) else spec
        if callable(items) and not isinstance(items, keras.Variable):
            items = [items]
        self._patterns, self._callables, self._variables = [], [], []
        for item in items:
            if isinstance(item, dict):  # a serialized registered function
                item = keras.saving.deserialize_keras_object(item)
            if isinstance(item, str):
                try:
                    self._patterns.append(re.compile(item))
                except re.error as e:
                    raise ValueError(
                        f"Argument `{argument}` must hold valid regular expressions; "
                        f"{item!r} does not compile ({e}). Received: {argument}={spec!r}"
                    ) from e
            elif isinstance(item, keras.Variable):
                self._variables.append(item)
            elif callable(item):
                self._callables.append(item)
            else:
                raise ValueError(
                    f"Argument `{argument}` must be None, a regex string, a callable or a "
                    f"list of regex strings, callables and variables. Received an item "
                    f"{item!r} of type {type(item).__name__}."
                )

    def add(self, var_list=None, var_names=None):
        """Adds variables and regexes (the Keras ``exclude_from_weight_decay`` method's form)."""
        self._variables.extend(var_list or [])
        self._patterns.extend(re.compile(n) for n in var_names or [])

    def matches(self, variable):
        """Whether ``variable`` (a ``keras.Variable``) is excluded."""
        if any(variable is v for v in self._variables):
            return True
        texts = [t for t in (getattr(variable, "path", None), variable.name) if t]
        if any(p.search(t) for p in self._patterns for t in texts):
            return True
        return any(bool(f(variable)) for f in self._callables)

    def get_config(self):
        """A JSON-friendly list: regexes as given, variables as anchored path regexes,
        registered functions serialized by Keras. ``None`` when nothing was given."""
        if self.spec is None and not (self._patterns or self._variables):
            return None
        out = [p.pattern for p in self._patterns]
        out += [f"^{re.escape(v.path)}$" for v in self._variables]
        out += [keras.saving.serialize_keras_object(f) for f in self._callables]
        return out
