"""The package as published: ``python -m build`` makes an sdist and, from it, a wheel that
``twine check --strict`` accepts and that carries the Apache-2.0 licence; installed into a
fresh virtual environment with its ``tf-cpu`` and ``recipes`` extras (nothing from this
checkout), ``import tf_lamb`` reports the one version, every console script answers
``--help``, the quickstart trains a model and the three Colab notebooks run (in their smoke
mode, on a Jupyter kernel of that environment, as Colab runs them after installing the
package). Needs PyPI, as a release does: the isolated
build fetches setuptools, the fresh environment its dependencies."""

import configparser
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

import tf_lamb
from tests.docs_support import ROOT
from tests.test_docs_examples import check_quickstart_report, run_quickstart

pytestmark = pytest.mark.slow
#: What the build needs from the checkout (the sdist's own MANIFEST decides what ships).
SOURCES = ["pyproject.toml", "setup.py", "README.md", "LICENSE", "CHANGELOG.md", "tf_lamb",
           "recipes"]


def _run(command, **kwargs):
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """``python -m build`` of a copy of the checkout (its build/ folder stays out of it)."""
    work = tmp_path_factory.mktemp("build")
    for name in SOURCES:
        source = os.path.join(ROOT, name)
        if os.path.isdir(source):
            shutil.copytree(source, work / "source" / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            os.makedirs(work / "source", exist_ok=True)
            shutil.copy(source, work / "source" / name)
    _run([sys.executable, "-m", "build", "--outdir", str(work / "dist"), str(work / "source")],
         timeout=900)
    return work / "dist"


def test_build_makes_an_sdist_and_a_wheel_that_twine_accepts(dist):
    (sdist,) = dist.glob("tf_lamb-*.tar.gz")
    (wheel,) = dist.glob("tf_lamb-*.whl")
    assert sdist.name == f"tf_lamb-{tf_lamb.__version__}.tar.gz"  # the one version source
    assert wheel.name.startswith(f"tf_lamb-{tf_lamb.__version__}-py3-none-any")
    checked = _run([sys.executable, "-m", "twine", "check", "--strict", str(sdist), str(wheel)],
                   timeout=300)
    assert checked.stdout.count("PASSED") == 2


def test_the_wheel_carries_the_license_and_the_recipes_files(dist):
    (wheel,) = dist.glob("tf_lamb-*.whl")
    with open(os.path.join(ROOT, "LICENSE"), encoding="utf-8") as f:
        license_text = f.read()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (license_file,) = [n for n in names if n.endswith("licenses/LICENSE")]
        assert archive.read(license_file).decode("utf-8") == license_text
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(metadata).decode("utf-8")
    assert "License-Expression: Apache-2.0" in metadata
    assert f"Version: {tf_lamb.__version__}" in metadata
    for shipped in ("tf_lamb/__init__.py", "tf_lamb/optimizers/lamb.py",
                    "tf_lamb/schedules/legw.py", "tf_lamb_recipes/README.md",
                    "tf_lamb_recipes/bert/pretrain.py", "tf_lamb_recipes/lstm/RESULTS.md"):
        assert shipped in names, shipped
    assert not [n for n in names if n.startswith(("tests/", "docs/", "benchmarks/"))]


@pytest.fixture(scope="module")
def environment(dist, tmp_path_factory):
    """A fresh virtual environment with the wheel and its tf-cpu and recipes extras, pinned
    as the checkout pins them (scripts/constraints.txt)."""
    (wheel,) = dist.glob("tf_lamb-*.whl")
    folder = tmp_path_factory.mktemp("fresh") / "env"
    _run([sys.executable, "-m", "venv", str(folder)], timeout=300)
    python = str(folder / "bin" / "python")
    _run([python, "-m", "pip", "install", "--quiet", f"{wheel}[tf-cpu,recipes]",
          "-c", os.path.join(ROOT, "scripts", "constraints.txt")], timeout=1500)
    # What a Colab runtime has besides: a Jupyter kernel (the notebooks' test only).
    _run([python, "-m", "pip", "install", "--quiet", "ipykernel", "nbclient", "nbformat"],
         timeout=900)
    return folder


def test_import_reports_the_version_from_the_installed_wheel(environment, tmp_path):
    done = _run([str(environment / "bin" / "python"), "-c",
                 "import tf_lamb; print(tf_lamb.__version__); print(tf_lamb.__file__)"],
                cwd=tmp_path, timeout=300)
    version, location = done.stdout.split()
    assert version == tf_lamb.__version__
    assert location.startswith(str(environment))


def test_every_console_script_answers_help(environment, dist, tmp_path):
    (wheel,) = dist.glob("tf_lamb-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        entry_points = next(n for n in archive.namelist() if n.endswith("entry_points.txt"))
        parser = configparser.ConfigParser()
        parser.read_string(archive.read(entry_points).decode("utf-8"))
    scripts = sorted(parser["console_scripts"])
    assert len(scripts) == 7 and "tf-lamb-batch-scaling" in scripts
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("PYTHONPATH", None)
    for script in scripts:
        done = subprocess.run([str(environment / "bin" / script), "--help"], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=300)
        # absl prints the flags and exits with 1 on --help, as every absl program does.
        assert done.returncode in (0, 1), f"{script}: {done.stderr[-2000:]}"
        assert "Traceback" not in done.stderr, f"{script}: {done.stderr[-2000:]}"
        # The recipe's own flags are listed, not only absl's pointer to --helpfull.
        assert done.stdout.count("\n  --") >= 3, f"{script}: {done.stdout[:500]}"


def test_the_quickstart_trains_a_model_in_the_fresh_environment(environment, tmp_path):
    report = run_quickstart(str(environment / "bin" / "python"), tmp_path, cwd=tmp_path)
    check_quickstart_report(report)
    assert report["tf_lamb"].startswith(str(environment))


#: Executes a notebook on the ``python3`` kernel of the interpreter that runs it.
EXECUTE_NOTEBOOK = """
import sys, nbformat
from nbclient import NotebookClient
notebook = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(notebook, timeout=900, kernel_name="python3",
               resources={"metadata": {"path": sys.argv[2]}}).execute()
"""


@pytest.mark.parametrize("notebook", ["quickstart", "bert_pretraining_tpu", "resnet50_tpu"])
def test_the_colab_notebook_runs_on_the_installed_wheel(environment, notebook, tmp_path):
    # The kernel is this environment's Python: its bin/ first on the PATH, no user kernels.
    env = dict(os.environ, TF_LAMB_SMOKE="1", TF_LAMB_WORK=str(tmp_path / "work"),
               TF_CPP_MIN_LOG_LEVEL="3", JUPYTER_DATA_DIR=str(tmp_path / "jupyter"),
               PATH=f"{environment / 'bin'}{os.pathsep}{os.environ['PATH']}")
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [str(environment / "bin" / "python"), "-c", EXECUTE_NOTEBOOK,
         os.path.join(ROOT, "colab", f"{notebook}.ipynb"), str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-4000:]
