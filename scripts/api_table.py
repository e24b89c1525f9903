"""Writes the API reference from the code: the README's API table and docs/API.md.

Both are generated from each public object's signature (arguments and defaults) and its
docstring (first line, ``Args:`` entries and first ``References:`` entry), so they cannot drift
from the code; ``tests/test_api_table.py`` fails when either is out of date.

    python scripts/api_table.py            # rewrite both
    python scripts/api_table.py --check    # exit 1 if either is out of date
"""

import inspect
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
API_DOC = os.path.join(ROOT, "docs", "API.md")
START, END = "<!-- api-table:start -->", "<!-- api-table:end -->"


def public_objects():
    """``(qualified name, object)`` of every public optimizer, schedule, rule and callback."""
    import tf_lamb

    s = tf_lamb.schedules
    return [
        ("tf_lamb.LAMB", tf_lamb.LAMB),
        ("tf_lamb.LARS", tf_lamb.LARS),
        ("tf_lamb.LANS", tf_lamb.LANS),
        ("tf_lamb.LARC", tf_lamb.LARC),
        ("tf_lamb.schedules.PolynomialDecayWithWarmup", s.PolynomialDecayWithWarmup),
        ("tf_lamb.schedules.LEGW", s.LEGW),
        ("tf_lamb.schedules.LEGW.from_base", s.LEGW.from_base),  # the source: LEGW's
        ("tf_lamb.schedules.WarmupConstantDecay", s.WarmupConstantDecay),
        ("tf_lamb.schedules.GoyalStepDecay", s.GoyalStepDecay),
        ("tf_lamb.schedules.sqrt_scaling", s.sqrt_scaling),
        ("tf_lamb.schedules.linear_scaling", s.linear_scaling),
        ("tf_lamb.callbacks.TrustRatioMonitor", tf_lamb.callbacks.TrustRatioMonitor),
    ]


def _section(doc, title):
    """The lines of a Google-style docstring section (``Args:``), dedented, or []."""
    lines = inspect.cleandoc(doc).splitlines()
    if f"{title}:" not in [line.strip() for line in lines]:
        return []
    start = [line.strip() for line in lines].index(f"{title}:") + 1
    body = []
    for line in lines[start:]:
        if line and not line.startswith(" "):
            break
        body.append(line[4:] if line.startswith("    ") else line.strip())
    return body


def arguments_help(doc):
    """``{argument: its Args entry on one line}``; an entry may name several arguments
    (``a, b,`` continued on the next line ``c: ...``)."""
    entries, names, pending = {}, None, ""
    for line in _section(doc, "Args"):
        if not line.strip():
            continue
        if line.startswith(" "):  # a continuation of the current entry
            if names:
                entries[names] += " " + line.strip()
            continue
        match = re.match(r"^([*\w, ]+):\s*(.*)$", pending + line)
        if match:
            names, pending = match.group(1), ""
            entries[names] = match.group(2)
        elif re.match(r"^[*\w, ]+,$", line):  # a list of names that goes on
            pending += line + " "
    help_ = {}
    for names, text in entries.items():
        for one in names.split(","):
            help_[one.strip()] = " ".join(text.split())
    return help_


def first_reference(doc):
    """The first ``References:`` entry, on one line, or ''."""
    text = " ".join(line.strip() for line in _section(doc or "", "References"))
    entries = [e.strip() for e in text.split("- ") if e.strip()]
    return entries[0] if entries else ""


def _source(qualified, obj):
    """The object's first reference; a method's falls back to its class's."""
    reference = first_reference(obj.__doc__)
    if not reference and qualified.count(".") == 3:
        reference = first_reference(getattr(sys.modules[obj.__module__],
                                            qualified.split(".")[2]).__doc__)
    return reference or "tf_lamb (no peer keeps the step's trust ratios)"


def _parameters(obj):
    signature = inspect.signature(obj.__init__ if inspect.isclass(obj) else obj)
    return [p for p in signature.parameters.values() if p.name not in ("self", "cls")]


def _inherited(obj, named, help_):
    """``(name, parameter)`` of each argument ``obj``'s docstring documents that its own
    signature leaves to ``**kwargs``, as the nearest base class's ``__init__`` declares it."""
    found = []
    for name in help_:
        if name in named or name.startswith("**") or not inspect.isclass(obj):
            continue
        for base in obj.__mro__[1:]:
            parameters = inspect.signature(base.__init__).parameters
            if name in parameters:
                found.append((name, parameters[name]))
                break
    return found


def _default(parameter):
    if parameter.kind is parameter.VAR_KEYWORD:
        return ""
    if parameter.default is parameter.empty:
        return "required"
    return f"`{parameter.default!r}`"


def _name(parameter):
    return f"**{parameter.name}" if parameter.kind is parameter.VAR_KEYWORD else parameter.name


def compact_table():
    """The README's table: one row per object, its arguments with defaults, its source."""
    rows = ["| API | arguments (defaults) | source |", "|---|---|---|"]
    for qualified, obj in public_objects():
        arguments = ", ".join(
            f"`{_name(p)}`" if p.kind is p.VAR_KEYWORD or p.default is p.empty
            else f"`{p.name}={p.default!r}`" for p in _parameters(obj))
        source = _source(qualified, obj).replace("|", "\\|")
        rows.append(f"| `{qualified}` | {arguments} | {source} |")
    return "\n".join(rows)


def full_reference():
    """docs/API.md: per object, its summary, source and a table of every argument."""
    parts = ["# API reference", "",
             "Generated by `python scripts/api_table.py` from the signatures and docstrings "
             "(do not edit by hand; `tests/test_api_table.py` checks it is current). Batch "
             "sizes are global (all replicas together); steps are optimizer steps.", ""]
    for qualified, obj in public_objects():
        summary = inspect.cleandoc(obj.__doc__).splitlines()[0]
        help_ = arguments_help(obj.__doc__)
        parts += [f"## `{qualified}`", "", summary, ""]
        reference = _source(qualified, obj)
        if reference:
            parts += [f"Source: {reference}", ""]
        parts += ["| argument | default | meaning |", "|---|---|---|"]
        named = {p.name for p in _parameters(obj)}
        for p in _parameters(obj):
            if p.kind is p.VAR_KEYWORD:  # Documented arguments passed on through **kwargs.
                for name, inherited in _inherited(obj, named, help_):
                    meaning = help_[name].replace("|", "\\|")
                    parts.append(f"| `{name}` | {_default(inherited)} | {meaning} |")
            meaning = help_.get(p.name, help_.get(f"**{p.name}", "")).replace("|", "\\|")
            parts.append(f"| `{_name(p)}` | {_default(p)} | {meaning} |")
        parts.append("")
    return "\n".join(parts)


def rendered_readme(readme_text):
    """``readme_text`` with the table between the markers replaced."""
    head, rest = readme_text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{compact_table()}\n{END}{tail}"


def main(argv):
    with open(README, encoding="utf-8") as f:
        readme = f.read()
    wanted = {README: rendered_readme(readme), API_DOC: full_reference()}
    stale = []
    for path, text in wanted.items():
        current = open(path, encoding="utf-8").read() if os.path.exists(path) else None
        if current != text:
            stale.append(os.path.relpath(path, ROOT))
            if "--check" not in argv:
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
    if "--check" in argv and stale:
        print(f"out of date: {', '.join(stale)} (run python scripts/api_table.py)")
        return 1
    return 0


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    sys.exit(main(sys.argv[1:]))
