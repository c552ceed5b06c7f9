"""``core.run_step``, the one step the layers run (a stream's step, a Flax cell's): in its
computation dtype it equals ``lstm`` over a one-step sequence in that dtype, and it refuses what
``lstm`` refuses."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlstm
from jaxlstm import core
from jaxlstm.core.options import SequenceOptions

BATCH, FEATURES, UNITS = 3, 4, 5


def _case(seed: int, **variant):
    """Params of ``init``'s structure for the variant, state and x_t, drawn with numpy (no
    initialiser compiles; non-zero biases, gains and offsets)."""
    rng = np.random.default_rng(seed)
    draw = lambda shape: (0.5 * rng.normal(size=shape)).astype(np.float32)  # noqa: E731
    shapes = jax.eval_shape(
        partial(jaxlstm.init, input_size=FEATURES, units=UNITS, **variant), jax.random.PRNGKey(0)
    )
    params = jax.tree_util.tree_map(lambda leaf: draw(leaf.shape), shapes)
    state = jaxlstm.LSTMState(h=draw((BATCH, params.output_size)), c=draw((BATCH, UNITS)))
    return params, state, draw((BATCH, FEATURES))


@pytest.mark.parametrize(
    "impl, variant, options",
    [
        ("auto", {}, {}),  # the native kernels on CPU, where lstm(impl="auto") picks them too
        (
            "scan",
            {"layer_norm": True, "peepholes": True},
            {"layer_norm_carry": "normalised", "dtype": jnp.bfloat16, "carry_dtype": jnp.float32},
        ),
        ("scan", {"coupled_gates": True, "proj_size": 2}, {"zoneout": (0.3, 0.1), "dtype": jnp.bfloat16}),
    ],
)
def test_run_step_equals_a_one_step_lstm(impl, variant, options) -> None:
    params, state, x_t = _case(0, **variant)
    dtype = options.get("dtype")
    run_step = jax.jit(core.run_step, static_argnums=(3, 4))
    new, y_t = run_step(params, state, x_t, SequenceOptions(impl=impl, **options), dtype)
    whole = jaxlstm.lstm(params, x_t[:, None], state, impl=impl, **options)
    # lstm returns c in the carry dtype and h in the computation dtype; so must the step
    assert (new.h.dtype, new.c.dtype) == (whole.state.h.dtype, whole.state.c.dtype)
    tol = 1e-2 if dtype == jnp.bfloat16 else 1e-6
    for ours, expected in [(y_t, whole.sequence[:, 0]), (new.h, whole.state.h), (new.c, whole.state.c)]:
        np.testing.assert_allclose(np.float32(ours), np.float32(expected), atol=tol, rtol=tol)


def test_run_step_refuses_an_impl_a_step_does_not_have() -> None:
    params, state, x_t = _case(1)
    with pytest.raises(ValueError, match="impl: a step runs 'auto' or 'scan'"):
        core.run_step(params, state, x_t, SequenceOptions(impl="cudnn"))


def test_stream_step_refuses_a_narrower_carry_as_stream_chunk_does() -> None:
    params, state, x_t = _case(2)
    with pytest.raises(ValueError, match="carry_dtype: expected a dtype at least as wide"):
        jaxlstm.stream_chunk(params, state, x_t[:, None], carry_dtype=jnp.bfloat16)
    with pytest.raises(ValueError, match="carry_dtype: expected a dtype at least as wide"):
        jaxlstm.stream_step(params, state, x_t, carry_dtype=jnp.bfloat16)
