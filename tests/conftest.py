"""Shared fixtures: golden files (`--update-golden` rewrites them) and a compiled tiny-llama."""

from __future__ import annotations

from pathlib import Path

import pytest

GOLDEN_DIR = Path(__file__).parent / "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", help="rewrite tests/golden/* from current outputs")


class Golden:
    """Compare text with a checked-in file byte for byte, or rewrite it when asked."""

    def __init__(self, update: bool):
        self.update = update

    def check(self, name: str, text: str) -> None:
        path = GOLDEN_DIR / name
        if self.update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            return
        if not path.is_file():
            pytest.fail(f"golden file {path} is missing; run pytest --update-golden to create it")
        expected = path.read_text()
        if text != expected:
            import difflib

            diff = "".join(list(difflib.unified_diff(expected.splitlines(True), text.splitlines(True), str(path), "actual"))[:60])
            pytest.fail(f"output differs from {path} (pytest --update-golden rewrites it):\n{diff}")


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Golden:
    return Golden(request.config.getoption("--update-golden"))


@pytest.fixture(scope="session")
def tiny_program():
    import pimc

    return pimc.compile("tiny-llama", "cpu-a76", seq_len=8, context=32)
