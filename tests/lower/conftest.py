"""Shared fixtures of the wasmlower.lower tests: the toy ISA and a private matcher cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from wasmlower.lower import clear_cache, load_isa_dir

FIXTURES = Path(__file__).parent / "fixtures"
TOY = FIXTURES / "toy"


@pytest.fixture(autouse=True, scope="session")
def _matcher_cache(tmp_path_factory: pytest.TempPathFactory):
    """Generated matchers go to a temporary cache, not the user's."""
    mp = pytest.MonkeyPatch()
    mp.setenv("WASMLOWER_CACHE_DIR", str(tmp_path_factory.mktemp("wasmlower-cache")))
    clear_cache()
    yield
    mp.undo()
    clear_cache()


@pytest.fixture(scope="session")
def toy(_matcher_cache):
    return load_isa_dir(TOY)
