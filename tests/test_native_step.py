"""``jaxlstm.step`` on the native CPU kernels (the one-step kernel of ``jaxlstm.core._native``) against
the pure-JAX reference step (``core.run_step`` with ``impl="scan"``): values, gradients of everything, forward mode, vmap
(over the batch and over per-example weights), a second derivative, eager calls; odd sizes (B=1,
unbatched, I=1, H not a multiple of the vector width, two batch axes). ``stream_step``, and the
reference for the variants, other dtypes and many rows, are checked by their lowering. One jit per
case and side.

The kernels' own tests (all T, masks, residuals) are in test_native.py; T=1 with masks is there,
and T=1 with more rows than the one-step kernel takes (the packed kernel)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlstm
from jaxlstm import core
from jaxlstm.core import native
from jaxlstm.core.options import SequenceOptions

pytestmark = pytest.mark.skipif(
    not native.available() or jax.default_backend() != "cpu",
    reason=f"the native kernels do not run here: {native.why_unavailable()}",
)

_CALL = "jaxlstm_native_forward"

# (batch_shape, I, H): unbatched, B=1 with I=1, H off the vector widths (8 / 16), two batch axes
# (6 rows, row tails of the micro-kernels), B=1 at the benchmark's size.
CASES = [
    ((), 3, 5),
    ((1,), 1, 13),
    ((2, 3), 4, 33),
    ((1,), 256, 256),
]


def _problem(batch_shape, I, H, seed=0):
    keys = jax.random.split(jax.random.PRNGKey(seed), 5)
    params = jaxlstm.init(keys[0], I, H)
    params = params._replace(bias=0.3 * jax.random.normal(keys[1], (4 * H,)))
    x = jax.random.normal(keys[2], (*batch_shape, I))
    state = jaxlstm.LSTMState(
        h=jax.random.normal(keys[3], (*batch_shape, H)), c=jax.random.normal(keys[4], (*batch_shape, H))
    )
    return params, state, x


def _reference(params, state, x):
    return core.run_step(params, state, x, SequenceOptions(impl="scan"))


def _everything(step):
    """Outputs, the gradient of a scalar loss w.r.t. every argument and a jvp, in one function."""

    def loss(params, state, x):
        new, y = step(params, state, x)
        return jnp.sum(jnp.sin(y)) + jnp.sum(new.c**2)

    def run(params, state, x):
        out = step(params, state, x)
        grads = jax.grad(loss, argnums=(0, 1, 2))(params, state, x)
        tangents = jax.tree_util.tree_map(lambda a: jnp.cos(a + 1.0), (params, state, x))
        _, tan = jax.jvp(lambda *a: step(*a)[0], (params, state, x), tangents)
        return out, grads, tan

    return jax.jit(run)


def _close(a, b, tol=1e-5):
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=tol, atol=tol)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_step_runs_the_kernel_and_matches_the_reference(case) -> None:
    args = _problem(*case)
    assert _CALL in str(jax.make_jaxpr(jaxlstm.step)(*args))
    _close(_everything(jaxlstm.step)(*args), _everything(_reference)(*args))


@pytest.mark.long
def test_vmap_over_the_batch_and_over_weights_and_a_second_derivative() -> None:
    params, state, x = _problem((4, 3), 5, 9)

    def both(step):
        def run(params, state, x):
            batched = jax.vmap(step, in_axes=(None, 0, 0))(params, state, x)
            stacked = jax.tree_util.tree_map(lambda a: jnp.stack([a, 2 * a, -a, a + 1]), params)
            per_weights = jax.vmap(step, in_axes=(0, 0, 0))(stacked, state, x)
            one = jax.tree_util.tree_map(lambda a: a[0, 0], state)
            hess = jax.hessian(lambda x1: jnp.sum(step(params, one, x1)[1] ** 2))(x[0, 0])
            return batched, per_weights, hess

        return jax.jit(run)

    assert _CALL in str(jax.make_jaxpr(both(jaxlstm.step))(params, state, x))
    _close(both(jaxlstm.step)(params, state, x), both(_reference)(params, state, x))


def test_eager_broadcast_state_and_stream_step() -> None:
    params, state, x = _problem((3,), 4, 6)
    zero = jaxlstm.zero_state(params)  # unbatched: serves the whole batch
    _close(jaxlstm.step(params, zero, x), _reference(params, jaxlstm.zero_state(params, (3,)), x))
    layers = (params, params._replace(kernel=params.recurrent_kernel))
    states = jaxlstm.stream_state(layers, (3,))
    assert _CALL in str(jax.make_jaxpr(jaxlstm.stream_step)(layers, states, x))


def test_variants_other_dtypes_and_many_rows_run_the_reference_step() -> None:
    key = jax.random.PRNGKey(0)
    # The fewest rows where native.preferred gives one step to XLA (the packed kernel lost there).
    rows = next(b for b in range(1, 1025) if not native.preferred(b, 1, 3, 4, jnp.float32))
    many = jaxlstm.init(key, 3, 4)
    assert _CALL not in str(
        jax.make_jaxpr(jaxlstm.step)(many, jaxlstm.zero_state(many, (rows,)), jnp.ones((rows, 3)))
    )
    x = jnp.ones((2, 3))
    for params in (
        jaxlstm.init(key, 3, 4, layer_norm=True),
        jaxlstm.init(key, 3, 4, peepholes=True),
        jaxlstm.init(key, 3, 4, coupled_gates=True),
        jaxlstm.init(key, 3, 4, proj_size=2),
        jaxlstm.init(key, 3, 4, param_dtype=jnp.bfloat16),
    ):
        dtype = params.kernel.dtype  # bfloat16 everywhere: not the kernels' float32
        state = jaxlstm.zero_state(params, (2,), dtype)
        assert _CALL not in str(jax.make_jaxpr(jaxlstm.step)(params, state, x.astype(dtype)))
    params = jaxlstm.init(key, 3, 4)
    other = jax.make_jaxpr(lambda p, s, x: jaxlstm.step(p, s, x, activation="relu"))
    assert _CALL not in str(other(params, jaxlstm.zero_state(params, (2,)), x))
    assert math.isfinite(float(jaxlstm.step(params, jaxlstm.zero_state(params, (2,)), x)[1].sum()))
