"""Fixtures shared by every test module."""

import keras
import pytest


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    keras.backend.clear_session()
    yield


def pytest_report_header(config):
    """Which Keras and backend ran (CI runs the optimizer tests on three Keras versions)."""
    return f"keras {keras.version()} ({keras.__file__}), backend {keras.backend.backend()}"
