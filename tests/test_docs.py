"""The examples in docs/api.md run as written."""

from __future__ import annotations

import doctest
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_api_examples(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wasmtime")
    monkeypatch.chdir(ROOT)
    result = doctest.testfile(str(ROOT / "docs" / "api.md"), module_relative=False,
                              optionflags=doctest.ELLIPSIS)
    assert result.attempted > 20
    assert result.failed == 0
    assert os.getcwd() == str(ROOT)


def test_component_examples(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wasmtime")
    monkeypatch.chdir(ROOT)
    result = doctest.testfile(str(ROOT / "docs" / "components.md"), module_relative=False,
                              optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 8
    assert result.failed == 0
