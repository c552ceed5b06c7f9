"""Forward mode through every entry point: ``jvp``, ``linearize`` (the linear function applied) and
``jacfwd`` of the default path equal the reference scan in float64 (issue 12).

The wrappings are where ``jit`` and ``jax.checkpoint`` sit relative to the call; ``jit_inside``
(``jax.jvp(jax.jit(f))``) and ``linearize`` are what inspecting tracer types could not see. The
cases and the product are in ``_transform_cases``; control flow and shard_map have their own files.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from _transform_cases import FORWARD, TRANSFORMS, WRAPPINGS, check, matrix, x64  # noqa: F401

import jaxlstm


@pytest.mark.parametrize("name, wrapping, transform", matrix(FORWARD))
def test_forward_mode(name: str, wrapping: str, transform: str) -> None:
    check(name, transform, wrapping)


@pytest.mark.parametrize("transform", ["jvp", "linearize", "jacfwd", "jacrev"])
@pytest.mark.parametrize("wrapping", ["none", "jit_inside"])
def test_unavailable_impl_fails_with_jaxlstm_error(transform: str, wrapping: str) -> None:
    """A configuration that cannot run (impl="cudnn" without a CUDA GPU) fails at trace time with
    jaxlstm's own error naming the configuration and the fix, never JAX's bare message."""
    if jax.default_backend() == "gpu":
        pytest.skip("cuDNN is available here: this checks the error without a CUDA GPU")
    params = jaxlstm.init(jax.random.key(0), 2, 3)
    xs = jnp.ones((2, 3, 2))

    def f(p: jax.Array) -> jax.Array:
        return jaxlstm.lstm(params, xs * p[0], impl="cudnn").sequence.ravel()

    g = WRAPPINGS[wrapping](f, 18)
    with pytest.raises(ValueError) as error:
        TRANSFORMS[transform](g, jnp.ones(1), jnp.ones(1), jnp.ones(18))
    message = str(error.value)
    assert "jaxlstm" in message, message
    assert "impl='cudnn'" in message and "impl='auto'" in message, message
