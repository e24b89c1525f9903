"""The conformance tests' fixtures."""

import keras
import pytest


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Overrides the suite-wide fixture of the same name (tests/conftest.py): a fresh Keras
    state for each test, without its garbage collection, which took about 0.3 s per test
    here, more than most of these tests themselves."""
    keras.backend.clear_session(free_memory=False)
    yield
