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
from jaxlstm.fast import FastConfig


@pytest.mark.parametrize("name, wrapping, transform", matrix(FORWARD))
def test_forward_mode(name: str, wrapping: str, transform: str) -> None:
    check(name, transform, wrapping)


@pytest.mark.parametrize("transform", ["jvp", "vjp"])
@pytest.mark.parametrize("wrapping", ["none", "jit_inside"])
@pytest.mark.parametrize(
    "impl, options",
    [
        pytest.param("cudnn", {}, id="cudnn"),  # no CUDA GPU here (skipped where there is one)
        pytest.param(FastConfig(checkpoint_chunks=2), {"activation": "relu"}, id="FastConfig-relu"),
        pytest.param("native", {"dtype": jnp.float64}, id="native-float64"),  # float32 kernels only
    ],
)
def test_unrunnable_configuration_fails_with_jaxlstm_error(
    impl: object, options: dict, transform: str, wrapping: str
) -> None:
    """A configuration that cannot run fails while tracing the transformation with jaxlstm's own
    error naming the configuration and the fix, never with JAX's bare message."""
    if impl == "cudnn" and jax.default_backend() == "gpu":
        pytest.skip("cuDNN runs here: this checks the error where there is no CUDA GPU")
    # float32 data: impl="cudnn" computes float32 only, and dtype is not what the cudnn case checks.
    params = jaxlstm.init(jax.random.key(0), 2, 3)
    xs = jnp.ones((2, 3, 2), jnp.float32)

    def f(p: jax.Array) -> jax.Array:
        return jaxlstm.lstm(params, xs * p[0], impl=impl, **options).sequence.ravel()

    one = jnp.ones(1, jnp.float32)
    with pytest.raises(ValueError) as error:
        TRANSFORMS[transform](WRAPPINGS[wrapping](f, 18), one, one, jnp.ones(18, jnp.float32))
    message = str(error.value)
    assert "jaxlstm" in message, message
    assert f"impl={impl!r}" in message and "impl='auto'" in message, message
