"""The tiny data every config test trains on, and the configs trained on it once a session."""

from typing import Any, Dict, Tuple

import pytest

from .harness import Trained, train_config, write_data


@pytest.fixture(scope="session")
def data(tmp_path_factory):
    return write_data(tmp_path_factory.mktemp("config_data"))


@pytest.fixture(scope="session")
def trained(data):
    """trained(name, **extra): configs/NAME.cfg (with the overrides extra) after a few updates
    on the tiny data (harness.train_config), trained once a session: the harness and the
    systems' own tests look at the same run."""
    cache: Dict[Tuple[str, Tuple[Tuple[str, Any], ...]], Trained] = {}

    def get(name: str, **extra) -> Trained:
        key = (name, tuple(sorted((k, repr(v)) for k, v in extra.items())))
        if key not in cache:
            cache[key] = train_config(name, data, extra)
        return cache[key]

    return get
