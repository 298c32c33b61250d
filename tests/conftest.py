"""Test-suite options and the collection of filetests (``tests/filetests/**/*.ir``).

``pytest tests/filetests`` runs every ``.ir`` file as one test item (the
runner is ``tests/test_filetests.py``); ``--bless`` (or ``WASMLOWER_BLESS=1``)
rewrites their expected output instead of failing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

FILETESTS = Path(__file__).parent / "filetests"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--bless", action="store_true", default=False,
                     help="filetests: rewrite expected output with the actual output "
                          "(also: WASMLOWER_BLESS=1)")


def pytest_collect_file(parent: pytest.Collector, file_path: Path):
    if file_path.suffix == ".ir" and FILETESTS in file_path.parents:
        from test_filetests import IrFile
        return IrFile.from_parent(parent, path=file_path)
    return None
