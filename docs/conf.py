"""Sphinx configuration of the tf_lamb documentation site.

Build it with ``bash scripts/docs.sh`` (``sphinx-build -W``: a warning fails the build). Pages
are Markdown (MyST), the API reference is generated from the docstrings (autodoc with
napoleon's Google style) and the Colab notebooks are rendered without being run (myst-nb).
"""

import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tf_lamb  # noqa: E402

project = "tf_lamb"
author = "tf_lamb developers"
copyright = "2026, tf_lamb developers"  # noqa: A001 (Sphinx's name)
release = tf_lamb.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "myst_nb",
]

# The notebooks live in colab/ (where Colab opens them); the site renders copies, made at
# each build into docs/notebooks/ (ignored by git), without executing them.
NOTEBOOKS = os.path.join(ROOT, "docs", "notebooks")
shutil.rmtree(NOTEBOOKS, ignore_errors=True)
os.makedirs(NOTEBOOKS)
for name in sorted(os.listdir(os.path.join(ROOT, "colab"))):
    if name.endswith(".ipynb"):
        shutil.copyfile(os.path.join(ROOT, "colab", name), os.path.join(NOTEBOOKS, name))
nb_execution_mode = "off"

source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "**/.ipynb_checkpoints"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
autodoc_member_order = "bysource"
autodoc_typehints = "none"
autodoc_class_signature = "mixed"

default_role = "literal"  # `x` in a docstring is code, as in Markdown
html_theme = "furo"
html_title = f"tf_lamb {release}"
html_static_path = []
