"""jaxlstm.native (the C++ FFI recurrences) against a plain lax.scan written here.

Forward: every output of ``native.forward`` (values and residuals) against the scan. Backward:
``native.backward_recurrence`` against ``jax.vjp`` of the scan (the recurrence with the input
projection as an argument, so the cotangent of that argument is ``d_z``), not against fast.py's
hand-written backward. Odd sizes (B=1, T=0/1, I=1, H=1, H not a multiple of the vector width),
masks, lengths, zero_output both ways, initial states, no bias; the ISA fallback and thread counts
in subprocesses (the environment is read at import). The entry points (``impl="native"``: vmap,
shard_map, two batch axes, all gradients) are in test_native_impl.py, test_native_shapes.py and
test_native_partition.py; ``JAXLSTM_NATIVE=0`` in test_native_impl.py.

The tests skip where the extension is not built, unless JAXLSTM_REQUIRE_NATIVE=1 (CI's strict mode),
which makes a missing extension a failure."""

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

from jaxlstm import native

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

if os.environ.get("JAXLSTM_REQUIRE_NATIVE") == "1" and not native.available():
    raise RuntimeError(f"JAXLSTM_REQUIRE_NATIVE=1 but the native path is off: {native.why_unavailable()}")

needs_native = pytest.mark.skipif(
    not native.available(), reason=f"native extension unavailable: {native.why_unavailable()}"
)

# (T, B, I, H, masks, zero_output, bias): T=0 and T=1, B=1, I=1, H=1, H around the AVX2 (8) /
# AVX-512 (16) widths and the backward tiles (16 / 32), row counts that leave micro-kernel tails;
# every mask case (none, keep, valid = lengths, both; zero_output where steps are not kept) on at
# least two shapes, one case without bias.
CASES = [
    (5, 3, 4, 7, "none", False, True),
    (5, 3, 4, 7, "both", True, True),
    (1, 1, 1, 1, "both", False, True),
    (1, 1, 1, 1, "keep", True, True),
    (0, 2, 3, 4, "both", False, True),
    (1, 4, 2, 16, "valid", False, True),
    (1, 12, 3, 90, "keep", True, True),  # T=1: the one-step kernel, two column blocks
    (1, 17, 2, 9, "valid", False, True),  # T=1 past the one-step kernel's 16 rows: packed
    (3, 1, 1, 33, "keep", False, True),
    (6, 17, 5, 40, "both", True, True),
    (6, 17, 5, 40, "none", False, False),
    (4, 16, 64, 128, "keep", True, True),
    (2, 13, 9, 70, "valid", False, True),
    (2, 13, 9, 70, "both", False, False),
]


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


def _scan_reference(U, a, h0, c0, keep, valid, zero_output):
    """The masked LSTM as a plain lax.scan, with ``a = xs @ W + b`` as an input (so the cotangent of
    ``a`` is the gradient of the pre-activations). Returns ``(ys, h_T, c_T)`` and the residuals
    ``native.forward(save=True)`` returns: the pre-activations and the state each step starts from."""

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
        return (h_new, c_new), (y, (z, h, c))

    (h_T, c_T), (ys, res) = jax.lax.scan(body, (h0, c0), (a, keep, valid))
    return (ys, h_T, c_T), res


@needs_native
@pytest.mark.parametrize(
    "case", CASES, ids=lambda c: "x".join(map(str, c[:4])) + f"-{c[4]}-z{int(c[5])}-b{int(c[6])}"
)
def test_forward_and_backward_recurrence_match_a_plain_scan(case):
    """All six outputs of ``native.forward`` (with and without residuals) against the scan, and
    ``native.backward_recurrence`` on the scan's residuals against ``jax.vjp`` of the scan. One
    jitted function per case (one compile)."""
    T, B, I, H, masks, zero_output, bias = case
    W, U, b, xs, h0, c0, keep, valid = _problem(T, B, I, H, masks=masks, bias=bias)
    rng = np.random.default_rng(2)
    cts = tuple(jnp.asarray(rng.normal(size=s), jnp.float32) for s in ((T, B, H), (B, H), (B, H)))

    @jax.jit
    def both(W, U, b, xs, h0, c0, keep, valid, cts):
        a = xs @ W + (0.0 if b is None else b)
        scan = lambda a, h, c: _scan_reference(U, a, h, c, keep, valid, zero_output)  # noqa: E731
        ref, vjp, res = jax.vjp(scan, a, h0, c0, has_aux=True)
        saved = native.forward(W, U, b, xs, h0, c0, keep, valid, zero_output=zero_output, save=True)
        plain = native.forward(W, U, b, xs, h0, c0, keep, valid, zero_output=zero_output, save=False)
        back = native.backward_recurrence(U, res[0], res[2], keep, valid, *cts, zero_output=zero_output)
        return (saved, plain[:3], back), ((*ref, res), ref, vjp(cts))

    (saved, plain, back), (want_saved, want_plain, want_back) = both(W, U, b, xs, h0, c0, keep, valid, cts)
    assert len(jax.tree.leaves(saved)) == 6
    for got, want in zip(
        jax.tree.leaves((saved, plain, back)), jax.tree.leaves((want_saved, want_plain, want_back))
    ):
        assert got.shape == want.shape and got.dtype == jnp.float32
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
        native.backward_recurrence(
            U, z, h0[None].repeat(2, 0), None, None, h0[None].repeat(2, 0), h0, c0, zero_output=False
        )


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
        T, B, I, H = 6, 32, 48, 70  # enough work per step for several threads (and 7)
        f = lambda *s: jnp.asarray(rng.normal(size=s) * 0.3, jnp.float32)
        W, U, b, xs, h0, c0 = f(I, 4 * H), f(H, 4 * H), f(4 * H), f(T, B, I), f(B, H), f(B, H)
        keep = jnp.asarray(rng.random((T, B)) > 0.3)
        ys, hT, cT, (z, hp, cp) = native.forward(W, U, b, xs, h0, c0, keep, None, zero_output=False, save=True)
        dz, dh0, dc0 = native.backward_recurrence(U, z, cp, keep, None, ys, hT, cT, zero_output=False)
        out["values"] = [np.asarray(a).ravel().tolist() for a in (ys, hT, cT, z, dz, dh0, dc0)]
    print(json.dumps(out))
    """
)


# The children, by name: the environment each one runs with (None: unset). Started together, so
# their imports and compiles overlap.
CHILDREN = {
    "default": {},
    "avx2-one-thread": {"JAXLSTM_NATIVE_ISA": "avx2", "JAXLSTM_NATIVE_THREADS": "1"},
    # More tasks than the pool has threads: tasks that start late or after the call finished must
    # neither block the call nor change the result.
    "seven-threads": {"JAXLSTM_NATIVE_THREADS": "7"},
    "avx512": {"JAXLSTM_NATIVE_ISA": "avx512"},
    "unknown-isa": {"JAXLSTM_NATIVE_ISA": "sse2"},
}


@pytest.fixture(scope="module")
def children() -> dict:
    """Runs _CHILD once per entry of CHILDREN, concurrently, with the JAXLSTM_NATIVE* variables of
    this process replaced by the entry's; returns each child's JSON output."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("JAXLSTM_NATIVE")}
    base.update({"PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"})
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-c", _CHILD],
            env={**base, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, env in CHILDREN.items()
    }
    out = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, (name, stderr[-3000:])
        out[name] = json.loads(stdout.strip().splitlines()[-1])
    return out


def _same_values(a: dict, b: dict, exact: bool):
    assert len(a["values"]) == len(b["values"]) == 7
    for x, y in zip(a["values"], b["values"]):
        if exact:
            assert x == y
        else:
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5)


@needs_native
@pytest.mark.long
def test_forced_avx2_fallback_on_one_thread_matches_default(children):
    forced, default = children["avx2-one-thread"], children["default"]
    assert forced["available"] and forced["isa"] == "avx2"
    # The same ISA as the default on an AVX2-only CPU (bit-identical: the thread count changes no
    # bit), else the same values to 1e-5.
    _same_values(forced, default, exact=default["isa"] == "avx2")


@needs_native
def test_more_threads_than_the_pool_do_not_change_a_bit(children):
    _same_values(children["seven-threads"], children["default"], exact=True)


@needs_native
def test_forced_avx512_runs_or_says_the_cpu_lacks_it(children):
    forced = children["avx512"]
    if children["default"]["isa"] == "avx512":
        assert forced["isa"] == "avx512"
        _same_values(forced, children["default"], exact=True)
    else:
        assert not forced["available"] and "avx512" in forced["why"]


def test_unknown_isa_name_says_so(children):
    out = children["unknown-isa"]
    if out["why"] is not None and "not built" in out["why"]:
        pytest.skip(out["why"])
    assert not out["available"] and "JAXLSTM_NATIVE_ISA" in out["why"]
