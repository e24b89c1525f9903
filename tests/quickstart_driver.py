"""Runs the quickstart's Python blocks as a user would, in a fresh process, and prints what
the tests check as one JSON line on the last line of stdout.

    KERAS_HOME=DIR python tests/quickstart_driver.py docs/quickstart.md

Standalone (only the standard library, Keras, NumPy and tf_lamb), so the wheel test runs it
with a fresh environment's Python, where ``tf_lamb`` is the installed wheel.
"""

import json
import re
import sys


def main(path):
    with open(path, encoding="utf-8") as f:
        first, larger_batch, ratios = re.findall(r"```python\n(.*?)```", f.read(), re.S)
    namespace = {}
    exec(compile(first, path, "exec"), namespace)  # noqa: S102
    result = namespace["model"].evaluate(namespace["x_test"], namespace["y_test"],
                                         return_dict=True, verbose=0)
    report = {"accuracy": float(result["accuracy"]),
              "optimizer": type(namespace["model"].optimizer).__name__}
    exec(compile(larger_batch, path, "exec"), namespace)  # noqa: S102
    report["peak_learning_rate"] = float(namespace["schedule"].peak_learning_rate)
    report["iterations"] = int(namespace["optimizer"].iterations)
    exec(compile(ratios, path, "exec"), namespace)  # noqa: S102
    statistics = namespace["statistics"]
    report["adapts"] = [bool(a) for a in statistics["adapts"]]
    report["trust_ratios"] = [float(r) for r in statistics["trust_ratio"][:, 0]]
    report["tf_lamb"] = namespace["tf_lamb"].__file__
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
