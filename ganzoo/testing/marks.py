"""How a contract test is declared, and how a plugin says one does not apply to it."""
from __future__ import annotations

import functools
from typing import Callable

import pytest


def contract_test(fn: Callable) -> Callable:
    """Mark a contract method as a test that a subclass can declare not applicable: a class
    attribute ``not_applicable = {"test_name": "why"}`` turns it into a skip that says why
    (a classifier has no seed-to-image generator; the reason shows in pytest's -rs report).
    The wrapper keeps the signature, so pytest still injects the test's fixtures."""

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        why = getattr(self, "not_applicable", {}).get(fn.__name__)
        if why:
            pytest.skip(f"{fn.__name__} declared not applicable: {why}")
        return fn(self, *args, **kwargs)
    return wrapper
