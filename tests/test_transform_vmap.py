"""``vmap`` of every transformation: batched over two points (and a tangent per point), the default
path equals the reference scan at each point in float64 (issue 12). See ``_transform_cases``."""

from __future__ import annotations

import pytest
from _transform_cases import check, matrix, x64  # noqa: F401


@pytest.mark.parametrize("name, wrapping, transform", matrix(batched=True))
def test_vmap_of_transformation(name: str, wrapping: str, transform: str) -> None:
    check(name, transform, wrapping, batched=True)
