"""``vmap`` of every transformation: batched over two points (and a tangent per point), the default
path equals the reference scan at each point in float64 (issue 12). See ``_transform_cases``."""

from __future__ import annotations

import pytest
from _transform_cases import ALL, ENTRY_CASES, check, x64  # noqa: F401

CELLS = [("lstm", w, t) for w in ("none", "jit_inside") for t in ALL]
CELLS += [("lstm_chunks", "jit_inside", t) for t in ALL]
CELLS += [(n, "none", "hvp") for n in ENTRY_CASES]


@pytest.mark.parametrize("name, wrapping, transform", [pytest.param(*c, id="-".join(c)) for c in CELLS])
def test_vmap_of_transformation(name: str, wrapping: str, transform: str) -> None:
    check(name, transform, wrapping, batched=True)
