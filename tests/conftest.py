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


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield
