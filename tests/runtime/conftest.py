import pytest
import rt_helpers


@pytest.fixture(autouse=True)
def _sound_trampolines(monkeypatch):
    """Route on-demand trampolines through a sound assembler (see rt_helpers)."""
    from wasmlower.isa.x64 import trampolines
    monkeypatch.setattr(trampolines, "build_trampolines", rt_helpers.build_trampolines)
