import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).parents[1]


def shared_data_dir() -> Path:
    """../shared/data beside the checkout, or $SPACY_LMCRF_DATA."""
    return Path(os.environ.get("SPACY_LMCRF_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.exists():
        pytest.skip(f"the benchmark corpora are not at {path}")
    return path


@pytest.fixture
def single_torch_thread():
    """One intra-op thread: the tensors of exact CRF tests are tiny, threads only contend."""
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "slow: takes a second or more (training, subprocesses, real corpora); "
        'the inner loop `pytest -m "not slow"` leaves them out, the README\'s command runs all',
    )
