"""Recipes for tf_lamb: absl-flag programs that reproduce large-batch experiments.

Installed as the package ``tf_lamb_recipes`` and runnable from the repository as ``recipes``, so
modules in here import each other with relative imports only. Recipes import ``tf_lamb``; the
library never imports recipes.
"""
