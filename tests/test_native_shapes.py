"""``impl="native"`` end to end on sizes that are not multiples of the kernels' tiles, against the
reference scan (``impl="scan"``) in float32 to 1e-5: values and gradients with respect to the
parameters, the inputs and the initial state, with masks, lengths, reverse and zero outputs.

``test_native.py`` checks the kernels' outputs (forward and backward recurrence) on the same kind of
sizes; here the whole entry point runs them, with the transposes and the weight-gradient GEMMs
around them. Sizes: B=1, T=0, T=1, I=1, H=1, H=33 / 40 / 70 (not multiples of 8 or 16, nor of the
backward tiles), B=17 and B=13 (micro-kernel row tails).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlstm
from jaxlstm import native

needs_native = pytest.mark.skipif(
    not native.available(), reason=f"native extension unavailable: {native.why_unavailable()}"
)

# (B, T, I, H, options)
CASES = {
    "1x1x1x1": (1, 1, 1, 1, {}),
    "T0": (2, 0, 3, 4, {}),
    "T1-mask-zero": (5, 1, 3, 33, {"mask": True, "zero_output_for_mask": True}),
    "I1-lengths-reverse": (17, 4, 1, 40, {"lengths": True, "reverse": True}),
    "mask-reverse-keep-order": (
        13,
        6,
        9,
        70,
        {"mask": True, "reverse": True, "keep_order": True, "zero_output_for_mask": True},
    ),
    "H1-mask": (3, 5, 2, 1, {"mask": True}),
}


def _problem(B, T, I, H, options, seed=0):
    rng = np.random.default_rng(seed)
    params = jaxlstm.init(jax.random.key(seed), I, H)
    xs = jnp.asarray(rng.normal(size=(B, T, I)), jnp.float32)
    state = jaxlstm.LSTMState(
        h=jnp.asarray(rng.normal(size=(B, H)) * 0.5, jnp.float32),
        c=jnp.asarray(rng.normal(size=(B, H)) * 0.5, jnp.float32),
    )
    kwargs = {k: v for k, v in options.items() if k not in ("mask", "lengths")}
    if options.get("mask"):
        kwargs["mask"] = jnp.asarray(rng.random((B, T)) > 0.3)
    if options.get("lengths"):
        kwargs["lengths"] = jnp.asarray(rng.integers(0, T + 1, size=B))
    return params, xs, state, kwargs


@needs_native
@pytest.mark.parametrize("case", list(CASES))
def test_values_and_gradients_equal_the_scan(case: str) -> None:
    B, T, I, H, options = CASES[case]
    params, xs, state, kwargs = _problem(B, T, I, H, options)
    weights = jnp.asarray(np.random.default_rng(1).normal(size=(B, T, H)), jnp.float32)

    def loss(impl):
        def f(params, xs, state):
            out = jaxlstm.lstm(params, xs, state, impl=impl, **kwargs)
            return jnp.sum(out.sequence * weights) + jnp.sum(out.state.h * out.state.c)

        return f

    outs = [
        jax.jit(jax.value_and_grad(loss(impl), argnums=(0, 1, 2)))(params, xs, state)
        for impl in ("native", "scan")
    ]
    for got, want in zip(*(jax.tree.leaves(o) for o in outs)):
        assert got.shape == want.shape and got.dtype == jnp.float32
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
