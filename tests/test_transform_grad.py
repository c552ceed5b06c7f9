"""Reverse mode through every entry point: ``vjp`` and ``jacrev`` of the default path (the fast path
where it applies) equal the reference scan in float64 (issue 12). See ``_transform_cases``."""

from __future__ import annotations

import pytest
from _transform_cases import REVERSE, check, matrix, x64  # noqa: F401


@pytest.mark.parametrize("name, wrapping, transform", matrix(REVERSE))
def test_reverse_mode(name: str, wrapping: str, transform: str) -> None:
    check(name, transform, wrapping)
