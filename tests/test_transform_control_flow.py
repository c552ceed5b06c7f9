"""Transformations of a ``lax.scan``, ``lax.cond`` or ``lax.while_loop`` whose body calls the entry
point: the default path equals the reference scan in float64 (issue 12). See ``_transform_cases``.

``while_loop`` takes forward mode only: JAX cannot reverse-differentiate a ``while_loop`` at all,
which ``test_while_loop_reverse_mode_is_jax_limit`` shows with the same error for a plain function.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from _transform_cases import TRANSFORMS, WRAPPINGS, case, check, matrix, x64  # noqa: F401


@pytest.mark.parametrize("name, wrapping, transform", matrix(control_flow=True))
def test_control_flow_around_the_call(name: str, wrapping: str, transform: str) -> None:
    check(name, transform, wrapping)


def test_while_loop_reverse_mode_is_jax_limit() -> None:
    """Reverse mode through a while_loop around lstm fails exactly as it does around plain jnp code."""
    c = case("lstm")

    def plain(p: jax.Array) -> jax.Array:
        return jnp.tanh(p[: c.size_out])

    errors = []
    for f in (c.f, plain):
        with pytest.raises(Exception) as error:
            TRANSFORMS["vjp"](WRAPPINGS["while"](f, c.size_out), c.point, c.point, jnp.ones(c.size_out))
        errors.append((type(error.value), str(error.value)))
    assert errors[0] == errors[1]
