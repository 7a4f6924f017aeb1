"""Shared fixtures. Real data is found through $MSNLAN_DATA or ../shared/data beside the checkout."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path | None:
    env = os.environ.get("MSNLAN_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data")
    for c in candidates:
        if (c / "benchmarks").is_dir():
            return c
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real benchmark data folder; skips the test where it is absent."""
    path = shared_data_dir()
    if path is None:
        pytest.skip("real benchmark data not found: set MSNLAN_DATA or place it at ../shared/data")
    return path


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture
def one_thread():
    """Run torch single-threaded: tiny tensors gain nothing from intra-op threads, and on a loaded
    2-core machine every parallel region can stall on a descheduled thread (measured 1.7 s instead
    of 17 ms for one tiny forward). Results do not depend on it (tolerances cover reduction order)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
