"""jaxlstm.native (the C++ FFI recurrences) against the pure-JAX fast path and a plain lax.scan.

Forward: every output of ``native.forward`` against ``fast._forward`` (values and residuals).
Backward: ``native.backward_recurrence`` against ``jax.vjp`` of a plain ``lax.scan`` written here
(the recurrence with the input projection as an argument, so the cotangent of that argument is
``d_z``), not against fast.py's hand-written backward. Odd sizes (B=1, T=0/1, I=1, H=1, H not a
multiple of the vector width), masks, lengths, zero_output both ways, initial states; the ISA
fallback, thread counts and ``JAXLSTM_NATIVE=0`` in subprocesses (the environment is read at import).

The tests skip where the extension is not built, unless JAXLSTM_REQUIRE_NATIVE=1 (CI's strict mode),
which makes a missing extension a failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlstm import fast, native
from jaxlstm.pytrees import LSTMParams

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

if os.environ.get("JAXLSTM_REQUIRE_NATIVE") == "1" and not native.available():
    raise RuntimeError(f"JAXLSTM_REQUIRE_NATIVE=1 but the native path is off: {native.why_unavailable()}")

needs_native = pytest.mark.skipif(
    not native.available(), reason=f"native extension unavailable: {native.why_unavailable()}"
)

# (T, B, I, H): T=0 and T=1, B=1, I=1, H=1, H around the AVX2 (8) / AVX-512 (16) widths and the
# backward tiles (16 / 32), row counts that leave micro-kernel tails.
SHAPES = [
    (5, 3, 4, 7),
    (1, 1, 1, 1),
    (0, 2, 3, 4),
    (1, 4, 2, 16),
    (3, 1, 1, 33),
    (6, 17, 5, 40),
    (4, 16, 64, 128),
    (2, 13, 9, 70),
]
# (masks, zero_output): zero_output only matters where steps are not kept.
MASK_CASES = [("none", False), ("keep", False), ("keep", True), ("valid", False), ("both", False), ("both", True)]


def _problem(T, B, I, H, masks="both", bias=True, seed=0):
    rng = np.random.default_rng(seed)
    f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    W = f32(rng.normal(size=(I, 4 * H)) * 0.3)
    U = f32(rng.normal(size=(H, 4 * H)) * 0.3)
    b = f32(rng.normal(size=(4 * H,)) * 0.3) if bias else None
    xs = f32(rng.normal(size=(T, B, I)))
    h0 = f32(rng.normal(size=(B, H)) * 0.5)
    c0 = f32(rng.normal(size=(B, H)) * 0.5)
    keep = jnp.asarray(rng.random((T, B)) > 0.3) if masks in ("keep", "both") else None
    valid = None
    if masks in ("valid", "both"):  # lengths: valid is a prefix per sequence
        lengths = rng.integers(0, T + 1, size=B)
        valid = jnp.asarray(np.arange(T)[:, None] < lengths[None, :])
    return W, U, b, xs, h0, c0, keep, valid


def _close(actual, expected):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------------------------
# Forward
# ----------------------------------------------------------------------------------------------


@needs_native
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("masks,zero_output", MASK_CASES)
def test_forward_matches_fast_path(shape, masks, zero_output):
    W, U, b, xs, h0, c0, keep, valid = _problem(*shape, masks=masks)
    params = LSTMParams(W, U, b, None)
    ref = fast._forward(params, xs, h0, c0, keep, valid, zero_output, fast.FastConfig(), True)
    out = native.forward(W, U, b, xs, h0, c0, keep, valid, zero_output=zero_output, save=True)
    ref_leaves, out_leaves = jax.tree.leaves(ref), jax.tree.leaves(out)
    assert len(out_leaves) == 6
    for a, e in zip(out_leaves, ref_leaves):
        assert a.shape == e.shape and a.dtype == jnp.float32
        _close(a, e)
    ys, h_T, c_T, res = native.forward(W, U, b, xs, h0, c0, keep, valid, zero_output=zero_output, save=False)
    assert res is None
    for a, e in zip((ys, h_T, c_T), ref[:3]):
        _close(a, e)


@needs_native
def test_forward_without_bias_under_jit():
    W, U, _, xs, h0, c0, keep, valid = _problem(7, 5, 3, 20)
    ref = fast._forward(LSTMParams(W, U, None, None), xs, h0, c0, keep, valid, False, fast.FastConfig(), False)
    run = jax.jit(lambda *a: native.forward(*a, zero_output=False, save=False)[:3])
    for a, e in zip(run(W, U, None, xs, h0, c0, keep, valid), ref[:3]):
        _close(a, e)


@needs_native
def test_forward_under_vmap():
    W, U, b, _, h0, c0, _, _ = _problem(4, 3, 5, 9)
    xs = jnp.asarray(np.random.default_rng(1).normal(size=(2, 4, 3, 5)), jnp.float32)
    run = jax.vmap(lambda x: native.forward(W, U, b, x, h0, c0, None, None, zero_output=False, save=False)[0])
    ref = jax.vmap(lambda x: fast._forward(LSTMParams(W, U, b, None), x, h0, c0, None, None, False, fast.FastConfig(), False)[0])
    _close(run(xs), ref(xs))


# ----------------------------------------------------------------------------------------------
# Backward recurrence
# ----------------------------------------------------------------------------------------------


def _scan_reference(U, a, h0, c0, keep, valid, zero_output):
    """The masked LSTM as a plain lax.scan, with ``a = xs @ W + b`` as an input: the cotangent of
    ``a`` is the gradient of the pre-activations."""

    def body(carry, inputs):
        h, c = carry
        a_t, k_t, v_t = inputs
        z = a_t + h @ U
        i, f, g, o = jnp.split(z, 4, axis=-1)
        i, f, g, o = jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(g), jax.nn.sigmoid(o)
        c_new = f * c + i * g
        h_new = o * jnp.tanh(c_new)
        y = h_new
        if k_t is not None:
            k = k_t[:, None]
            y = jnp.where(k, h_new, jnp.zeros_like(h) if zero_output else h)
            h_new, c_new = jnp.where(k, h_new, h), jnp.where(k, c_new, c)
        if v_t is not None:
            y = jnp.where(v_t[:, None], y, 0.0)
        return (h_new, c_new), y

    (h_T, c_T), ys = jax.lax.scan(body, (h0, c0), (a, keep, valid))
    return ys, h_T, c_T


@needs_native
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("masks,zero_output", MASK_CASES)
def test_backward_recurrence_matches_vjp_of_scan(shape, masks, zero_output):
    W, U, b, xs, h0, c0, keep, valid = _problem(*shape, masks=masks)
    a = xs @ W + b
    outs, vjp = jax.vjp(lambda a, h, c: _scan_reference(U, a, h, c, keep, valid, zero_output), a, h0, c0)
    rng = np.random.default_rng(2)
    cts = tuple(jnp.asarray(rng.normal(size=o.shape), jnp.float32) for o in outs)
    d_a, d_h0, d_c0 = vjp(cts)
    _, _, _, (z, _, c_prev) = native.forward(W, U, b, xs, h0, c0, keep, valid, zero_output=zero_output, save=True)
    out = native.backward_recurrence(U, z, c_prev, keep, valid, *cts, zero_output=zero_output)
    for got, want in zip(out, (d_a, d_h0, d_c0)):
        assert got.shape == want.shape and got.dtype == jnp.float32
        _close(got, want)


@needs_native
def test_backward_recurrence_on_fast_path_residuals_under_jit():
    """The residuals of fast._forward are accepted as they are (the lead's plug-in point)."""
    W, U, b, xs, h0, c0, keep, valid = _problem(9, 6, 4, 24)
    _, _, _, (z, _, c_prev) = fast._forward(LSTMParams(W, U, b, None), xs, h0, c0, keep, valid, True, fast.FastConfig(), True)
    outs, vjp = jax.vjp(lambda a, h, c: _scan_reference(U, a, h, c, keep, valid, True), xs @ W + b, h0, c0)
    cts = tuple(jnp.ones_like(o) for o in outs)
    run = jax.jit(lambda *a: native.backward_recurrence(*a, zero_output=True))
    for got, want in zip(run(U, z, c_prev, keep, valid, *cts), vjp(cts)):
        _close(got, want)


# ----------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------


@needs_native
def test_non_float32_is_a_clear_error():
    W, U, b, xs, h0, c0, _, _ = _problem(2, 2, 3, 4)
    with pytest.raises(ValueError, match="float32 only; xs has dtype bfloat16"):
        native.forward(W, U, b, xs.astype(jnp.bfloat16), h0, c0, None, None, zero_output=False, save=False)
    z = jnp.zeros((2, 2, 16), jnp.float16)
    with pytest.raises(ValueError, match="z has dtype float16"):
        native.backward_recurrence(U, z, h0[None].repeat(2, 0), None, None, h0[None].repeat(2, 0), h0, c0, zero_output=False)


@needs_native
def test_shape_mismatch_is_a_clear_error():
    W, U, b, xs, h0, c0, _, _ = _problem(2, 2, 3, 4)
    with pytest.raises(ValueError, match="keep must have shape"):
        native.forward(W, U, b, xs, h0, c0, jnp.ones((3, 2), bool), None, zero_output=False, save=False)
    with pytest.raises(ValueError, match="kernel"):
        native.forward(W[:2], U, b, xs, h0, c0, None, None, zero_output=False, save=False)


# ----------------------------------------------------------------------------------------------
# Environment: ISA fallback, thread counts, disabled (subprocesses: read at import)
# ----------------------------------------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import json, sys
    import numpy as np, jax, jax.numpy as jnp
    from jaxlstm import native
    out = {"available": native.available(), "why": native.why_unavailable(), "isa": native.isa()}
    if native.available():
        rng = np.random.default_rng(0)
        T, B, I, H = 6, 11, 5, 37
        f = lambda *s: jnp.asarray(rng.normal(size=s) * 0.3, jnp.float32)
        W, U, b, xs, h0, c0 = f(I, 4 * H), f(H, 4 * H), f(4 * H), f(T, B, I), f(B, H), f(B, H)
        keep = jnp.asarray(rng.random((T, B)) > 0.3)
        ys, hT, cT, (z, hp, cp) = native.forward(W, U, b, xs, h0, c0, keep, None, zero_output=False, save=True)
        dz, dh0, dc0 = native.backward_recurrence(U, z, cp, keep, None, ys, hT, cT, zero_output=False)
        out["values"] = [np.asarray(a).ravel().tolist() for a in (ys, hT, cT, z, dz, dh0, dc0)]
    print(json.dumps(out))
    """
)


def _child(env: dict) -> dict:
    full = {**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu", **env}
    for k, v in env.items():
        if v is None:
            full.pop(k)
    run = subprocess.run([sys.executable, "-c", _CHILD], env=full, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def default_child():
    return _child({"JAXLSTM_NATIVE_ISA": None, "JAXLSTM_NATIVE_THREADS": None})


def _same_values(a: dict, b: dict, exact: bool):
    for x, y in zip(a["values"], b["values"]):
        if exact:
            assert x == y
        else:
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5)


def test_disabled_by_environment_imports_and_says_why():
    out = _child({"JAXLSTM_NATIVE": "0"})
    assert out["available"] is False and out["isa"] is None
    assert "disabled" in out["why"] and "JAXLSTM_NATIVE=0" in out["why"]


@needs_native
def test_forced_avx2_fallback_matches_default(default_child):
    forced = _child({"JAXLSTM_NATIVE_ISA": "avx2"})
    assert forced["available"] and forced["isa"] == "avx2"
    # Same ISA as the default on an AVX2-only CPU (bit-identical), else the same values to 1e-5.
    _same_values(forced, default_child, exact=default_child["isa"] == "avx2")


@needs_native
def test_forced_avx512_runs_or_says_the_cpu_lacks_it(default_child):
    forced = _child({"JAXLSTM_NATIVE_ISA": "avx512"})
    if default_child["isa"] == "avx512":
        assert forced["isa"] == "avx512"
        _same_values(forced, default_child, exact=True)
    else:
        assert not forced["available"] and "avx512" in forced["why"]


@needs_native
@pytest.mark.parametrize("threads", ["1", "7"])
def test_thread_count_does_not_change_a_bit(default_child, threads):
    """1 thread, and more tasks than the pool has threads (tasks that start late or after the call
    finished must neither block the call nor change the result)."""
    out = _child({"JAXLSTM_NATIVE_THREADS": threads, "JAXLSTM_NATIVE_ISA": None})
    _same_values(out, default_child, exact=True)


def test_unknown_isa_name_says_so():
    out = _child({"JAXLSTM_NATIVE_ISA": "sse2"})
    if out["why"] is not None and "not built" in out["why"]:
        pytest.skip(out["why"])
    assert not out["available"] and "JAXLSTM_NATIVE_ISA" in out["why"]
