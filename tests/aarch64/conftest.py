"""Fixtures of the AArch64 tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def pool(monkeypatch):
    """Data words among instructions are stepped over (capstone's skipdata), so the
    emitter puts float constants in literal pools (``isa.aarch64.emit.data_in_code``)."""
    import capstone

    from wasmlower.emit import assemble
    from wasmlower.isa.aarch64.emit import data_in_code
    md = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    md.skipdata = True
    monkeypatch.setitem(assemble._CS, "aarch64", md)
    assert data_in_code()


@pytest.fixture
def no_pool(monkeypatch):
    """Instruction boundaries stop at data words (capstone's default): no literal pools."""
    import capstone

    from wasmlower.emit import assemble
    from wasmlower.isa.aarch64.emit import data_in_code
    monkeypatch.setitem(assemble._CS, "aarch64",
                        capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM))
    assert not data_in_code()
