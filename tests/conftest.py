"""Shared fixtures. The `golden` fixture and `--update-golden` come from pimc's own pytest plugin
(`pimc.testing`, registered as an entry point), exactly as a user's project gets them."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


@pytest.fixture(scope="session")
def tiny_program():
    import pimc

    return pimc.compile("tiny-llama", "cpu-a76", seq_len=8, context=32)
