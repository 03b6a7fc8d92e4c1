"""Shared fixtures: paths to the repository and to ../shared/data (skipped when absent)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Tests never touch the user's settings, caches or autosaves.
_SANDBOX = Path(tempfile.mkdtemp(prefix="kintsugi-tests-"))
for _var, _sub in (("KINTSUGI_CONFIG_DIR", "config"), ("KINTSUGI_CACHE", "cache"), ("KINTSUGI_STATE_DIR", "state")):
    os.environ.setdefault(_var, str(_SANDBOX / _sub))

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SHARED_CONTRACTS = REPO.parent / "shared" / "contracts"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def contracts() -> Path:
    if not SHARED_CONTRACTS.is_dir():
        pytest.skip("../shared/contracts is not present")
    return SHARED_CONTRACTS

