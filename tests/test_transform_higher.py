"""Second derivatives through every entry point: ``hessian``, ``jvp`` of ``grad`` (Hessian-vector
products) and ``grad`` of ``grad`` equal the reference scan in float64, and
``jax.test_util.check_grads`` to order 2 in both modes checks them against finite differences
(issue 12). See ``_transform_cases``."""

from __future__ import annotations

import jax
import pytest
from _transform_cases import HIGHER, WRAPPINGS, case, check, matrix, x64  # noqa: F401
from jax.test_util import check_grads


@pytest.mark.parametrize("name, wrapping, transform", matrix(HIGHER))
def test_second_order(name: str, wrapping: str, transform: str) -> None:
    check(name, transform, wrapping)


@pytest.mark.parametrize("name, wrapping", [("lstm_chunks", "none")])
@pytest.mark.long
def test_check_grads_order_2(name: str, wrapping: str) -> None:
    """Forward and reverse derivatives to order 2 against finite differences (the reference scan's
    derivatives are JAX's own; this checks the fast path independently of them). One case, the
    fast path with mask, lengths, reverse, an initial state and checkpointed chunks: check_grads
    compiles a dozen programs."""
    c = case(name)
    # jit outermost: check_grads evaluates f and its derivatives at many points; each compiles once.
    f = jax.jit(WRAPPINGS[wrapping](c.f, c.size_out))
    check_grads(f, (c.point,), order=2, modes=("fwd", "rev"))
