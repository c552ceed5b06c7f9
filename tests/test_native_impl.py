"""``impl="native"``: the native CPU kernels behind the fast path's derivative rules, end to end.

The kernels themselves are checked in ``test_native.py``; here the entry points with
``impl="native"`` equal the reference scan (``impl="scan"``) in float32 to 1e-5: values, gradients
with respect to parameters, inputs and initial state, forward mode through ``jit``, a Hessian, ``vmap``
of ``grad``, ``shard_map`` over 2 host devices; masks, lengths, reverse, two batch axes. Without the
extension (``JAXLSTM_NATIVE=0``) ``impl="native"`` is a clear error and the default path computes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlstm
from jaxlstm import native

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_native = pytest.mark.skipif(
    not native.available(), reason=f"native extension unavailable: {native.why_unavailable()}"
)
B, T, I, H = 3, 6, 4, 5
TOL = dict(atol=1e-5, rtol=1e-5)


def _close(a, b) -> None:
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(x, y, **TOL)


def _data():
    params = jaxlstm.init(jax.random.key(0), I, H)
    xs = jax.random.normal(jax.random.key(1), (B, T, I))
    state = jaxlstm.LSTMState(
        h=0.5 * jax.random.normal(jax.random.key(2), (B, H)),
        c=0.5 * jax.random.normal(jax.random.key(3), (B, H)),
    )
    return params, xs, state


CASES = {
    "plain": {},
    "mask": dict(mask=np.array([[1, 1, 0, 1, 0, 1], [0, 1, 1, 1, 1, 1], [1, 0, 0, 0, 0, 1]], bool)),
    "mask_zero_reverse": dict(
        mask=np.array([[1, 0, 1, 1, 1, 0], [1, 1, 1, 0, 1, 1], [0, 1, 1, 1, 1, 1]], bool),
        zero_output_for_mask=True,
        reverse=True,
        keep_order=True,
    ),
    "lengths_reverse": dict(lengths=np.array([T, 2, 0]), reverse=True),
}


def _loss(impl, kwargs):
    def loss(params, xs, state):
        out = jaxlstm.lstm(params, xs, state, impl=impl, **kwargs)
        return jnp.sum(out.sequence**2) + jnp.sum(out.state.h * out.state.c)

    return loss


@needs_native
@pytest.mark.parametrize("case", sorted(CASES))
def test_values_and_gradients_equal_the_scan(case: str) -> None:
    params, xs, state = _data()
    fast, ref = _loss("native", CASES[case]), _loss("scan", CASES[case])
    _close(jax.jit(fast)(params, xs, state), ref(params, xs, state))
    argnums = (0, 1, 2)
    _close(jax.jit(jax.grad(fast, argnums))(params, xs, state), jax.grad(ref, argnums)(params, xs, state))
    # Forward mode through jit (the kernel has no tangent: the rules give it in pure JAX).
    _close(
        jax.jacfwd(jax.jit(fast), argnums=1)(params, xs, state), jax.jacfwd(ref, argnums=1)(params, xs, state)
    )


@needs_native
@pytest.mark.long
def test_second_order_and_vmap() -> None:
    params, xs, state = _data()
    fast, ref = _loss("native", {}), _loss("scan", {})
    x = xs[:1, :3]
    _close(
        jax.hessian(lambda x: fast(params, x, None))(x),
        jax.hessian(lambda x: ref(params, x, None))(x),
    )
    per_example = jax.vmap(jax.grad(lambda x: fast(params, x[None], None)))(xs)
    _close(per_example, jax.vmap(jax.grad(lambda x: ref(params, x[None], None)))(xs))


@needs_native
def test_two_batch_axes_stacks_and_modules() -> None:
    from flax import nnx

    import jaxlstm.nnx

    params, _, _ = _data()
    xs = jax.random.normal(jax.random.key(4), (2, B, T, I))
    _close(jaxlstm.lstm(params, xs, impl="native"), jaxlstm.lstm(params, xs, impl="scan"))
    stack = jaxlstm.init_stack(jax.random.key(5), I, H, num_layers=2, bidirectional=True)

    def stacked(impl):
        return jax.grad(lambda p: jnp.sum(jaxlstm.stacked_lstm(p, xs, impl=impl).sequence ** 2))(stack)

    _close(stacked("native"), stacked("scan"))
    layer = jaxlstm.nnx.LSTM(I, H, return_sequences=True, impl="native", rngs=nnx.Rngs(0))
    reference = jaxlstm.nnx.LSTM.from_params(layer.params, return_sequences=True, impl="scan")
    _close(layer(xs), reference(xs))


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT, **env},
        timeout=300,
    )


@needs_native
@pytest.mark.long
def test_shard_map_over_two_devices() -> None:
    proc = _run(
        """
        import jax, jax.numpy as jnp, numpy as np
        from jax.sharding import Mesh, PartitionSpec as P
        import jaxlstm
        assert jax.device_count() == 2, jax.devices()
        mesh = Mesh(np.array(jax.devices()), ("batch",))
        params = jaxlstm.init(jax.random.key(0), 3, 4)
        xs = jax.random.normal(jax.random.key(1), (4, 5, 3))
        lengths = jnp.array([5, 2, 4, 1])

        def loss(impl):
            def local(p, x, n):
                return jax.lax.psum(jnp.sum(jaxlstm.lstm(p, x, lengths=n, impl=impl).sequence ** 2), "batch")
            sharded = jax.shard_map(local, mesh=mesh, in_specs=(P(), P("batch"), P("batch")), out_specs=P())
            return jax.jit(jax.value_and_grad(sharded))(params, xs, lengths)

        (v1, g1), (v2, g2) = loss("native"), loss("scan")
        np.testing.assert_allclose(v1, v2, rtol=1e-5)
        for a, b in zip(jax.tree_util.tree_leaves(g1), jax.tree_util.tree_leaves(g2)):
            np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)
        print("ok")
        """,
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
    )
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-3000:]


def test_without_the_extension_native_is_a_clear_error_and_auto_computes() -> None:
    proc = _run(
        """
        import jax, jax.numpy as jnp
        import jaxlstm
        from jaxlstm import native
        assert not native.available() and "JAXLSTM_NATIVE=0" in native.why_unavailable()
        assert native.preferred(2, 5, 3, 4, jnp.float32) is False
        params = jaxlstm.init(jax.random.key(0), 3, 4)
        xs = jnp.ones((2, 5, 3))
        loss = lambda p: jaxlstm.lstm(p, xs).sequence.sum()
        # impl="auto" lowers to the pure-JAX path (no custom call of the kernels) and computes.
        assert "jaxlstm_native_lstm" not in jax.jit(jax.grad(loss)).lower(params).as_text()
        reference = jax.grad(lambda p: jaxlstm.lstm(p, xs, impl="scan").sequence.sum())(params)
        for a, b in zip(jax.tree_util.tree_leaves(jax.grad(loss)(params)), jax.tree_util.tree_leaves(reference)):
            assert abs(a - b).max() < 1e-5
        print("computed")
        try:
            jaxlstm.lstm(params, xs, impl="native")
        except ValueError as e:
            print("ERROR", e)
        """,
        JAXLSTM_NATIVE="0",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "computed" in proc.stdout, proc.stdout
    assert (
        "ERROR jaxlstm: impl='native': the native kernels are unavailable: disabled by the environment"
        in (proc.stdout)
    ), proc.stdout
