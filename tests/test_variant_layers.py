"""The issue-15 variants through the layers above ``lstm``: bidirectional, stacks and streaming.

Resets are checked against their meaning, not against the library's own reset code: a pass with
``resets`` equals the plain layer run on each episode separately (cut at the resets, every episode
from zeros), so no information crosses an episode boundary in either direction. Streaming is checked
against the whole-sequence pass; the stack's regularisers against their training/inference contract.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlstm
from jaxlstm import LayerNormParams, LSTMState, PeepholeParams

B, T, I, H = 2, 7, 3, 4
# Episode starts per sequence (input time); step 0 of a pass needs none.
RESETS = np.zeros((B, T), bool)
RESETS[0, [3, 5]] = True
RESETS[1, [2]] = True


def _variant_params(key: jax.Array, input_size: int = I, units: int = H) -> jaxlstm.LSTMParams:
    """Plain weights plus layer-norm gains/offsets and peepholes drawn away from their neutral values."""
    k = jax.random.split(key, 8)
    p = jaxlstm.init(k[0], input_size, units)
    g = 4 * units
    normal = lambda key, n, s: s * jax.random.normal(key, (n,))  # noqa: E731
    ln = LayerNormParams(
        1 + normal(k[1], g, 0.2), normal(k[2], g, 0.2), 1 + normal(k[3], g, 0.2),
        normal(k[4], g, 0.2), 1 + normal(k[5], units, 0.2), normal(k[6], units, 0.2),
    )  # fmt: skip
    pk = jax.random.split(k[7], 3)
    peep = PeepholeParams(*(normal(kk, units, 0.5) for kk in pk))
    return p._replace(layer_norm=ln, peepholes=peep)


def _episodes(row: np.ndarray, length: int) -> list[tuple[int, int]]:
    """[start, stop) of each episode of one sequence's valid prefix."""
    starts = [0, *[t for t in range(1, length) if row[t]]]
    return list(zip(starts, [*starts[1:], length]))


@pytest.fixture(scope="module")
def xs() -> jax.Array:
    return jax.random.normal(jax.random.key(1), (B, T, I))


def test_bidirectional_resets_equal_separate_episodes(xs) -> None:
    params = jaxlstm.BidirectionalParams(
        _variant_params(jax.random.key(2)), _variant_params(jax.random.key(3))
    )
    out = jaxlstm.bidirectional(params, xs, resets=RESETS, merge_mode=None)
    for b in range(B):
        for start, stop in _episodes(RESETS[b], T):
            alone = jaxlstm.bidirectional(params, xs[b, start:stop], merge_mode=None)
            for got, want in zip(out.sequence, alone.sequence):
                np.testing.assert_allclose(got[b, start:stop], want, rtol=1e-5, atol=1e-6)
        # The backward direction's final state is its state after input step 0: the first episode's.
        first = jaxlstm.bidirectional(params, xs[b, : _episodes(RESETS[b], T)[0][1]], merge_mode=None)
        np.testing.assert_allclose(out.state.backward.h[b], first.state.backward.h, rtol=1e-5, atol=1e-6)


def test_bidirectional_resets_with_lengths_and_time_major(xs) -> None:
    params = jaxlstm.init_bidirectional(jax.random.key(4), I, H)
    lengths = np.array([6, 4])
    # A start on the first padded step must not reach the backward pass of the valid prefix.
    resets = RESETS.copy()
    resets[1, 4] = True
    # The backward pass starts from a non-zero state: only the last episode may see it.
    zero = jaxlstm.zero_state(params.forward, (), jnp.float32)
    given = LSTMState(h=jnp.full((H,), 0.5), c=jnp.full((H,), -0.5))
    start_state = jaxlstm.BidirectionalState(zero, given)
    out = jaxlstm.bidirectional(params, xs, start_state, resets=resets, lengths=lengths, merge_mode=None)
    for b in range(B):
        episodes = _episodes(resets[b], int(lengths[b]))
        for start, stop in episodes:
            state = start_state if stop == episodes[-1][1] else jaxlstm.BidirectionalState(zero, zero)
            alone = jaxlstm.bidirectional(params, xs[b, start:stop], state, merge_mode=None)
            for got, want in zip(out.sequence, alone.sequence):
                np.testing.assert_allclose(got[b, start:stop], want, rtol=1e-5, atol=1e-6)
    tm = jaxlstm.bidirectional(
        params, jnp.swapaxes(xs, 0, 1), start_state, resets=resets.T, lengths=lengths, merge_mode=None,
        time_major=True,
    )  # fmt: skip
    for got, want in zip(tm.sequence, out.sequence):
        np.testing.assert_allclose(jnp.swapaxes(got, 0, 1), want, rtol=1e-6, atol=1e-7)


def test_bidirectional_reset_state_and_errors(xs) -> None:
    params = jaxlstm.init_bidirectional(jax.random.key(5), I, H)
    one = LSTMState(h=jnp.full((H,), 0.3), c=jnp.full((H,), -0.2))
    to = jaxlstm.BidirectionalState(one, one)
    out = jaxlstm.bidirectional(params, xs, resets=RESETS, reset_state=to, merge_mode=None)
    b, (start, stop) = 0, _episodes(RESETS[0], T)[1]
    alone = jaxlstm.bidirectional(params, xs[b, start:stop], initial_state=to, merge_mode=None)
    np.testing.assert_allclose(out.sequence[0][b, start:stop], alone.sequence[0], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"resets: expected shape \[2, 7\]"):
        jaxlstm.bidirectional(params, xs, resets=RESETS[:, :-1])
    with pytest.raises(TypeError, match="reset_state: expected BidirectionalState"):
        jaxlstm.bidirectional(params, xs, resets=RESETS, reset_state=one)
    with pytest.raises(TypeError, match=r"weight_drop_mask: expected a \(forward, backward\) pair"):
        jaxlstm.bidirectional(params, xs, weight_drop_mask=jnp.ones((H, 4 * H)))


def test_bidirectional_zoneout_and_weight_drop_per_direction(xs) -> None:
    params = jaxlstm.init_bidirectional(jax.random.key(6), I, H)
    key = jax.random.key(7)
    out = jaxlstm.bidirectional(params, xs, zoneout=0.3, zoneout_key=key, merge_mode=None)
    k_f, k_b = jax.random.split(key)
    forward = jaxlstm.lstm(params.forward, xs, zoneout=0.3, zoneout_key=k_f, zero_output_for_mask=True)
    backward = jaxlstm.lstm(params.backward, xs, zoneout=0.3, zoneout_key=k_b, reverse=True, keep_order=True)
    np.testing.assert_allclose(out.sequence[0], forward.sequence, rtol=1e-6)
    np.testing.assert_allclose(out.sequence[1], backward.sequence, rtol=1e-6)
    m_f, m_b = (jax.random.bernoulli(k, 0.6, (H, 4 * H)) / 0.6 for k in jax.random.split(key))
    dropped = jaxlstm.bidirectional(params, xs, weight_drop_mask=(m_f, m_b), merge_mode=None)
    manual = params.backward._replace(recurrent_kernel=params.backward.recurrent_kernel * m_b)
    want = jaxlstm.lstm(manual, xs, reverse=True, keep_order=True).sequence
    np.testing.assert_allclose(dropped.sequence[1], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_stack_resets_equal_separate_episodes(xs, bidirectional) -> None:
    params = jaxlstm.init_stack(jax.random.key(8), I, H, num_layers=2, bidirectional=bidirectional)
    out = jaxlstm.stacked_lstm(params, xs, resets=RESETS)
    for b in range(B):
        for start, stop in _episodes(RESETS[b], T):
            alone = jaxlstm.stacked_lstm(params, xs[b, start:stop])
            np.testing.assert_allclose(out.sequence[b, start:stop], alone.sequence, rtol=1e-5, atol=1e-6)


def test_stack_zoneout_and_weight_drop_follow_deterministic(xs) -> None:
    params = jaxlstm.init_stack(jax.random.key(9), I, H, num_layers=2)
    key = jax.random.key(10)
    # Inference: the expectation in every layer, i.e. two lstm calls without keys.
    evaluation = jaxlstm.stacked_lstm(params, xs, zoneout=(0.2, 0.1), weight_drop=0.5, deterministic=True)
    ys = xs
    for layer in params:
        ys = jaxlstm.lstm(layer, ys, zoneout=(0.2, 0.1)).sequence
    np.testing.assert_allclose(evaluation.sequence, ys, rtol=1e-6)
    # Training: random, reproducible from the key, different for another key and from inference.
    train = lambda k: (
        jaxlstm.stacked_lstm(  # noqa: E731
            params, xs, zoneout=(0.2, 0.1), weight_drop=0.5, deterministic=False, key=k
        ).sequence
    )
    first, again, other = train(key), train(key), train(jax.random.key(11))
    np.testing.assert_array_equal(first, again)
    assert float(jnp.abs(first - other).max()) > 1e-3
    assert float(jnp.abs(first - evaluation.sequence).max()) > 1e-3
    with pytest.raises(ValueError, match="deterministic: weight_drop=0.5 needs"):
        jaxlstm.stacked_lstm(params, xs, weight_drop=0.5)
    with pytest.raises(ValueError, match=r"deterministic: zoneout=0.2 needs"):
        jaxlstm.stacked_lstm(params, xs, zoneout=0.2)
    with pytest.raises(ValueError, match="key: weight_drop=0.5 with deterministic=False needs a PRNG key"):
        jaxlstm.stacked_lstm(params, xs, weight_drop=0.5, deterministic=False)


def test_stack_weight_drop_is_one_mask_per_call_on_the_recurrent_kernel(xs) -> None:
    # A zero mask row-block cuts h out of the recurrence: rate 1 leaves a stack of input-only cells.
    params = jaxlstm.init_stack(jax.random.key(12), I, H, num_layers=2)
    dropped = jaxlstm.stacked_lstm(params, xs, weight_drop=1.0, deterministic=False, key=jax.random.key(0))
    ys = xs
    for layer in params:
        ys = jaxlstm.lstm(
            layer._replace(recurrent_kernel=jnp.zeros_like(layer.recurrent_kernel)), ys
        ).sequence
    np.testing.assert_allclose(dropped.sequence, ys, rtol=1e-6)


@pytest.mark.parametrize("stacked", [False, True])
def test_streaming_with_resets_and_variants_equals_one_pass(xs, stacked) -> None:
    if stacked:
        params = (_variant_params(jax.random.key(13)), _variant_params(jax.random.key(14), H, H))
    else:
        params = _variant_params(jax.random.key(13))
    options = dict(zoneout=(0.2, 0.1), layer_norm_carry="normalised")
    whole = jaxlstm.stacked_lstm(
        params if stacked else (params,), xs, resets=RESETS, deterministic=True, **options
    )
    state = jaxlstm.stream_state(params, (B,))
    ys = []
    for t in range(T):
        state, y = jaxlstm.stream_step(params, state, xs[:, t], reset=RESETS[:, t], **options)
        ys.append(y)
    np.testing.assert_allclose(jnp.stack(ys, 1), whole.sequence, rtol=1e-5, atol=1e-6)
    state = jaxlstm.stream_state(params, (B,))
    chunks = []
    for start, stop in ((0, 3), (3, T)):
        state, y = jaxlstm.stream_chunk(
            params, state, xs[:, start:stop], resets=RESETS[:, start:stop], **options
        )
        chunks.append(y)
    np.testing.assert_allclose(jnp.concatenate(chunks, 1), whole.sequence, rtol=1e-5, atol=1e-6)


def test_stream_step_reset_errors(xs) -> None:
    params = jaxlstm.init(jax.random.key(15), I, H)
    state = jaxlstm.stream_state(params, (B,))
    with pytest.raises(ValueError, match=r"reset: expected shape \[2\]"):
        jaxlstm.stream_step(params, state, xs[:, 0], reset=np.zeros((B, 1), bool))
    with pytest.raises(ValueError, match="reset_state: given without reset"):
        jaxlstm.stream_step(params, state, xs[:, 0], reset_state=state)


def test_no_gradient_crosses_an_episode_boundary(xs) -> None:
    """Outputs of the second episode of sequence 0 (steps 3, 4) do not depend on any other step's
    input, in either direction, in a bidirectional stack: their gradient there is exactly zero."""
    params = jaxlstm.init_stack(jax.random.key(16), I, H, num_layers=2, bidirectional=True)

    def second_episode(xs):
        out = jaxlstm.stacked_lstm(params, xs, resets=RESETS)
        return jnp.sum(out.sequence[0, 3:5] ** 2)

    grad = jax.jit(jax.grad(second_episode))(xs)
    outside = np.ones((B, T), bool)
    outside[0, 3:5] = False
    assert float(jnp.abs(grad[outside]).max()) == 0.0
    assert float(jnp.abs(grad[0, 3:5]).min()) > 0.0


def test_vmap_over_a_stack_with_resets_equals_the_batched_call(xs) -> None:
    params = jaxlstm.init_stack(jax.random.key(17), I, H, num_layers=2)
    batched = jaxlstm.stacked_lstm(params, xs, resets=RESETS, zoneout=0.1, deterministic=True).sequence
    mapped = jax.vmap(
        lambda x, r: jaxlstm.stacked_lstm(params, x, resets=r, zoneout=0.1, deterministic=True).sequence
    )(xs, RESETS)
    np.testing.assert_allclose(mapped, batched, rtol=1e-6, atol=1e-7)
