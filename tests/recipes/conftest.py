"""Fixtures shared by the recipe tests."""

import os

import pytest

from recipes.batch_scaling import data as fashion_data


@pytest.fixture(scope="module")
def fashion():
    """Fashion-MNIST from the Debian package (no download); skipped when it is not installed,
    failed when ``TF_LAMB_REQUIRE_DATA`` is set (CI)."""
    try:
        return fashion_data.load_fashion_mnist(allow_download=False)
    except fashion_data.DataNotFoundError as error:
        if os.environ.get("TF_LAMB_REQUIRE_DATA"):
            pytest.fail(str(error))
        pytest.skip(str(error))
