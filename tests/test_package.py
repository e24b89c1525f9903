"""The package as published: the wheel carries the Apache-2.0 licence it declares."""

import os
import shutil
import subprocess
import sys
import zipfile

import pytest

import tf_lamb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_license_file_is_apache_2_and_ships_in_the_wheel(tmp_path):
    with open(os.path.join(ROOT, "LICENSE"), encoding="utf-8") as f:
        text = f.read()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    # Built from a copy, so setuptools' build/ folder is not left in the checkout.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "*.egg-info", "__pycache__", "docs", "tests", "colab",
        "benchmarks"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    if built.returncode != 0:
        pytest.fail(f"pip wheel failed:\n{built.stderr[-2000:]}")
    (wheel,) = tmp_path.glob("tf_lamb-*.whl")
    assert wheel.name.startswith(f"tf_lamb-{tf_lamb.__version__}-")  # the one version source
    with zipfile.ZipFile(wheel) as archive:
        licenses = [n for n in archive.namelist() if n.endswith("licenses/LICENSE")]
        assert len(licenses) == 1
        assert archive.read(licenses[0]).decode("utf-8") == text
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        assert "License-Expression: Apache-2.0" in archive.read(metadata).decode("utf-8")
