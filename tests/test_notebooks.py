"""Static checks of the Colab notebooks (colab/*.ipynb). CI also executes each one in smoke
mode (``TF_LAMB_SMOKE=1 pytest --nbmake colab``, scripts/test.sh)."""

import glob
import os
import re

import nbformat
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "colab", "*.ipynb")))


def test_the_three_notebooks_exist():
    assert [os.path.basename(p) for p in NOTEBOOKS] == [
        "bert_pretraining_tpu.ipynb", "quickstart.ipynb", "resnet50_tpu.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_is_valid_has_a_smoke_mode_and_guards_colab_only_steps(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    source = "\n".join(code)
    assert 'os.environ.get("TF_LAMB_SMOKE") == "1"' in code[0]
    assert 'IN_COLAB = "google.colab" in sys.modules' in code[0]
    # Installs and apt-get run only on Colab: inside `if IN_COLAB:` blocks, never as shell
    # escapes (`!pip`) or magics that would run anywhere.
    assert not re.search(r"^\s*[!%](pip|apt)", source, re.M)
    for line_no, line in enumerate(code[0].splitlines()):
        if "pip" in line and "install" in line or "apt-get" in line:
            before = code[0].splitlines()[:line_no]
            assert any(b.startswith("if IN_COLAB") for b in before), line
    # The recipes and the package are imported, not copied into the notebook.
    assert "import tf_lamb" in source or "from tf_lamb_recipes" in source
    assert "class " not in source
