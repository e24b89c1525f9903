"""Fixtures shared by the recipe tests."""

import os

import pytest

from recipes.common import corpus
from recipes.common import fashion_mnist as fashion_data

from . import bert_runs


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


@pytest.fixture(scope="session")
def tutorial_dir():
    """The Python tutorial's documentation sources from Debian's python3.11-doc (17 documents
    of real English prose); skipped when missing, failed when ``TF_LAMB_REQUIRE_DATA`` is set."""
    path = os.path.join(corpus.DEFAULT_CORPUS, "tutorial")
    if not os.path.isdir(path):
        message = f"{path} missing (apt-get install python3.11-doc)"
        if os.environ.get("TF_LAMB_REQUIRE_DATA"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def _fashion_records(tmp_path_factory, name, examples):
    """ImageNet-format JPEG records of ``examples`` Fashion-MNIST training and as many
    validation images (4 and 2 files), from the ResNet recipe's converter."""
    from absl import flags

    from recipes.resnet import convert

    out = tmp_path_factory.mktemp(name)
    fv = flags.FlagValues()
    convert.define_flags(fv)
    fv(["prog", f"--output_dir={out}", f"--max_examples={examples}", "--train_shards=4",
        "--validation_shards=2"])
    convert.convert(fv, log=lambda *_: None)
    return out


@pytest.fixture(scope="module")
def record_dir(fashion, tmp_path_factory):
    """512 training and 512 validation images as records (:func:`_fashion_records`)."""
    del fashion  # only its presence
    return _fashion_records(tmp_path_factory, "fashion_records", 512)


@pytest.fixture(scope="module")
def miniature_records(fashion, tmp_path_factory):
    """4,096 training and 4,096 validation images as records (:func:`_fashion_records`)."""
    del fashion  # only its presence
    return _fashion_records(tmp_path_factory, "fashion_4k", 4096)


@pytest.fixture(scope="session")
def bert_data_dir(tutorial_dir, tmp_path_factory):
    """BERT pre-training records of length 128 and 512 made from the tutorial (see
    :func:`bert_runs.make_records`)."""
    return bert_runs.make_records(tutorial_dir, tmp_path_factory.mktemp("bert_data"))


@pytest.fixture(scope="session")
def bert_array_dir(tutorial_dir, bert_data_dir, tmp_path_factory):
    """:func:`bert_data_dir`'s examples as NumPy shards (``--output_format=npy``, the same
    vocabulary and seed, so the same examples)."""
    return bert_runs.make_records(tutorial_dir, tmp_path_factory.mktemp("bert_arrays"),
                                  "--output_format=npy", f"--vocab_file={bert_data_dir}/vocab.txt")
