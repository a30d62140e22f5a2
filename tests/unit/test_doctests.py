"""The runnable examples in the docstrings (River style) are tests too."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import rtp

MODULES = sorted(
    name
    for _, name, _ in pkgutil.walk_packages(rtp.__path__, "rtp.")
    if ">>> " in (importlib.util.find_spec(name).loader.get_source(name) or "")  # type: ignore[union-attr]
)


def test_some_modules_carry_examples() -> None:
    assert len(MODULES) >= 3, MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
