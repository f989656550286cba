"""The docstring examples of the numpy reference are executable and correct."""

import doctest
import importlib

import pytest

MODULES = ["bitpath.ref.formats", "bitpath.ref.packing", "bitpath.ref.requant", "bitpath.ref.bounds"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
