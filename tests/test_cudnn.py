"""The cuDNN path's weight layout, checked on CPU against JAX's own reference of the cuDNN call.

``jax.experimental.rnn.lstm_ref`` is what ``jax.experimental.rnn.lstm`` (cuDNN) computes, written as
scans; it runs anywhere. ``jaxlstm.cudnn.pack`` must put every weight where cuDNN expects it, so that
the reference on the packed weights equals jaxlstm. The cuDNN call itself needs a CUDA GPU:
``benchmarks/gpu_check.py`` runs it there (not in CI, which has no GPU).
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlstm
from jaxlstm.core import cudnn

B, T, I, H = 3, 6, 4, 5
XS = jax.random.normal(jax.random.key(1), (B, T, I))
LENGTHS = jnp.array([6, 2, 4], jnp.int32)


def _valid(lengths: jax.Array) -> jax.Array:
    return (jnp.arange(T) < lengths[:, None])[..., None]


@pytest.mark.parametrize("use_bias", [True, False])
def test_one_layer_matches_the_cudnn_reference(use_bias: bool) -> None:
    params = jaxlstm.init(jax.random.key(0), I, H, use_bias=use_bias)
    if use_bias:
        params = params._replace(bias=jax.random.normal(jax.random.key(2), (4 * H,)))
    state = jaxlstm.LSTMState(
        h=jax.random.normal(jax.random.key(3), (B, H)), c=jax.random.normal(jax.random.key(4), (B, H))
    )
    ours = jaxlstm.lstm(params, XS, state, lengths=LENGTHS)
    ys, h_n, c_n = cudnn.unpack_reference(
        cudnn.pack(params), XS, state.h[None], state.c[None], LENGTHS, hidden_size=H
    )
    valid = _valid(LENGTHS)
    np.testing.assert_allclose(jnp.where(valid, ys, 0), ours.sequence, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h_n[0], ours.state.h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c_n[0], ours.state.c, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["unidirectional", "bidirectional"])
def test_stack_matches_the_cudnn_reference(bidirectional: bool) -> None:
    stack = jaxlstm.init_stack(jax.random.key(5), I, H, num_layers=2, bidirectional=bidirectional)
    ours = jaxlstm.stacked_lstm(stack, XS, lengths=LENGTHS)
    pseudo = 4 if bidirectional else 2
    zeros = jnp.zeros((pseudo, B, H))
    ys, h_n, c_n = cudnn.unpack_reference(
        cudnn.pack(stack), XS, zeros, zeros, LENGTHS, hidden_size=H, num_layers=2, bidirectional=bidirectional
    )
    np.testing.assert_allclose(jnp.where(_valid(LENGTHS), ys, 0), ours.sequence, rtol=1e-5, atol=1e-6)
    # cuDNN orders final states layer 0 forward, layer 0 backward, layer 1 forward, ... like PyTorch.
    torch_h, torch_c = jaxlstm.torch_state(ours.state)
    np.testing.assert_allclose(h_n, torch_h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c_n, torch_c, rtol=1e-5, atol=1e-6)


def test_pack_is_differentiable_and_routes_gradients_to_the_right_weights() -> None:
    params = jaxlstm.init(jax.random.key(6), I, H)
    weights = jax.random.normal(jax.random.key(7), (B, T, H))

    def ours(p):
        return jnp.sum(jaxlstm.lstm(p, XS).sequence * weights)

    def reference(p):
        zeros = jnp.zeros((1, B, H))
        ys, _, _ = cudnn.unpack_reference(
            cudnn.pack(p), XS, zeros, zeros, jnp.full((B,), T, jnp.int32), hidden_size=H
        )
        return jnp.sum(ys * weights)

    expected, found = jax.grad(ours)(params), jax.grad(reference)(params)
    for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(found)):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def test_pack_size_and_layout_errors() -> None:
    from jax.experimental import rnn

    stack = jaxlstm.init_stack(jax.random.key(8), I, H, num_layers=3, bidirectional=True)
    assert cudnn.pack(stack).shape == (rnn.get_num_params_in_lstm(I, H, 3, True),)
    projected = jaxlstm.init(jax.random.key(9), I, H, proj_size=2)
    with pytest.raises(ValueError, match=re.escape("params[0]: cuDNN's LSTM has no projection (proj_size)")):
        cudnn.pack(projected)
    with pytest.raises(ValueError, match="params: expected at least one layer, found none"):
        cudnn.pack(())


def test_impl_cudnn_says_what_it_cannot_do() -> None:
    params = jaxlstm.init(jax.random.key(0), I, H)
    mask = jnp.ones((B, T), bool)
    cases = [
        (
            dict(mask=mask),
            "impl='cudnn': mask: cuDNN takes lengths (right padding), not a mask; use impl='auto'",
        ),
        (dict(reverse=True), "impl='cudnn': reverse: not supported with impl='cudnn'; use impl='auto'"),
        (
            dict(activation="relu"),
            "impl='cudnn': activation: cuDNN's LSTM computes sigmoid gates and tanh activations only",
        ),
        (dict(dtype=jnp.bfloat16), "impl='cudnn': dtype: float32 only (found bfloat16); use impl='auto'"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=re.escape(message)):
            jaxlstm.lstm(params, XS, impl="cudnn", **kwargs)
    with pytest.raises(ValueError, match=re.escape("impl='cudnn': params: cuDNN's LSTM has no projection")):
        jaxlstm.lstm(jaxlstm.init(jax.random.key(0), I, H, proj_size=2), XS, impl="cudnn")
    if jax.default_backend() != "gpu":
        with pytest.raises(
            ValueError, match=re.escape("impl='cudnn': needs a CUDA GPU, and jax's default backend is 'cpu'")
        ):
            jaxlstm.lstm(params, XS, impl="cudnn")
    with pytest.raises(
        ValueError,
        match=re.escape(
            "impl: expected 'auto', 'scan', 'cudnn', 'native' or a jaxlstm.fast.FastConfig, found 'cuda'"
        ),
    ):
        jaxlstm.lstm(params, XS, impl="cuda")


def test_impl_cudnn_composes_with_every_transformation(monkeypatch) -> None:
    """impl='cudnn' runs cuDNN undifferentiated and the fast path's rules under differentiation.

    No GPU here: JAX's reference of the cuDNN call stands in for it (what the tests above check the
    packing against), so this pins the routing: values from the cuDNN call, jvp / jacfwd through jit /
    grad equal to the reference scan."""
    from jaxlstm.pytrees import LSTMOutput, LSTMState

    calls = []

    def reference_call(params, xs, state, lengths):
        calls.append(xs.shape)
        batch, steps, _ = xs.shape
        seq_lengths = jnp.full((batch,), steps, jnp.int32) if lengths is None else lengths.astype(jnp.int32)
        ys, h_n, c_n = cudnn.unpack_reference(
            cudnn.pack(params), xs, state.h[None], state.c[None], seq_lengths, hidden_size=params.units
        )
        return LSTMOutput(sequence=ys, state=LSTMState(h=h_n[0], c=c_n[0]))

    monkeypatch.setattr(cudnn, "available", lambda: True)
    monkeypatch.setattr(cudnn, "lstm", reference_call)
    params = jaxlstm.init(jax.random.key(0), I, H)
    lengths = jnp.array([T, 2, 1, T - 1][:B])

    def f(x, impl):
        out = jaxlstm.lstm(params, x, lengths=lengths, impl=impl)
        return out.sequence.sum() + (out.state.h * out.state.c).sum()

    np.testing.assert_allclose(f(XS, "cudnn"), f(XS, "scan"), rtol=1e-5)
    assert calls, "the cuDNN call did not run"
    for transform in (jax.grad, lambda g: jax.jacfwd(jax.jit(g))):
        np.testing.assert_allclose(
            transform(lambda x: f(x, "cudnn"))(XS), transform(lambda x: f(x, "scan"))(XS), atol=1e-5
        )
    tangent = jax.jvp(lambda x: f(x, "cudnn"), (XS,), (XS,))[1]
    np.testing.assert_allclose(tangent, jax.jvp(lambda x: f(x, "scan"), (XS,), (XS,))[1], rtol=1e-4)
