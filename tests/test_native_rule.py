"""``impl="auto"`` and the measured rule ``native.preferred``.

``native.preferred`` answers a bool for any shape, False where the kernels cannot run (not float32,
or the extension off); its threshold is measured by benchmarks/native_auto.py, not tested here. What
is tested: ``impl="auto"`` runs the native kernels exactly where the rule says, observed in the
lowered program (the kernels' XLA FFI targets are named in its custom calls), and the pure-JAX path
elsewhere: float64, bfloat16, ``impl="scan"``, a ``FastConfig``; without the extension
(``JAXLSTM_NATIVE=0``) in test_native_impl.py.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

import jaxlstm
from jaxlstm import native

SHAPES = [(1, 1, 1, 1), (16, 8, 4, 2), (64, 100, 128, 256), (128, 100, 512, 512), (0, 5, 3, 4), (4, 0, 3, 4)]
# The custom-call targets of the forward and backward kernels (jaxlstm/_native/lstm.cc).
FORWARD, BACKWARD = "jaxlstm_native_lstm_forward_f32", "jaxlstm_native_lstm_backward_f32"


@pytest.mark.parametrize("shape", SHAPES)
def test_a_bool_and_false_where_the_kernels_cannot_run(shape) -> None:
    for dtype in (jnp.float32, "float32"):
        assert type(native.preferred(*shape, dtype)) is bool
    for dtype in (jnp.bfloat16, jnp.float16, jnp.float64):
        assert native.preferred(*shape, dtype) is False
    if not native.available():
        assert native.preferred(*shape, jnp.float32) is False


def _lowered(batch_shape, steps, inputs, units, dtype=jnp.float32, impl="auto", grad=False) -> str:
    """The lowered text of ``lstm`` (or its gradient) on abstract arrays: no compile, no data."""
    params = jax.eval_shape(lambda: jaxlstm.init(jax.random.PRNGKey(0), inputs, units, param_dtype=dtype))
    xs = jax.ShapeDtypeStruct((*batch_shape, steps, inputs), dtype)

    def run(params, xs):
        return jaxlstm.lstm(params, xs, impl=impl).sequence.sum()

    return jax.jit(jax.grad(run) if grad else run).lower(params, xs).as_text()


# (batch axes, T, I, H): the five shapes, two batch axes, wide and one-element shapes.
AUTO_CASES = [
    ((16,), 8, 4, 2),
    ((32,), 50, 32, 64),
    ((64,), 100, 128, 256),
    ((16,), 1000, 64, 128),
    ((128,), 100, 512, 512),
    ((4, 16), 8, 4, 2),
    ((64,), 3, 512, 512),
    ((8,), 3, 512, 512),
    ((3,), 1, 1, 1),
]


@pytest.mark.skipif(not native.available(), reason="the native kernels are unavailable here")
@pytest.mark.parametrize("case", AUTO_CASES, ids=str)
def test_auto_runs_the_native_kernels_exactly_where_preferred(case) -> None:
    batch_shape, steps, inputs, units = case
    want = native.preferred(*_flat(case), jnp.float32)
    forward = _lowered(batch_shape, steps, inputs, units)
    assert (FORWARD in forward) is want
    training = _lowered(batch_shape, steps, inputs, units, grad=True)
    assert (FORWARD in training) is want and (BACKWARD in training) is want


def _flat(case) -> tuple:
    batch_shape, steps, inputs, units = case
    n = 1
    for b in batch_shape:
        n *= b
    return n, steps, inputs, units


@pytest.mark.skipif(not native.available(), reason="the native kernels are unavailable here")
def test_auto_runs_pure_jax_for_other_dtypes_and_impls() -> None:
    small = ((16,), 8, 4, 2)
    assert FORWARD in _lowered(*small)  # the control: auto does take the kernels here
    assert FORWARD not in _lowered(*small, dtype=jnp.bfloat16)
    assert FORWARD not in _lowered(*small, impl="scan")
    assert FORWARD not in _lowered(*small, impl=jaxlstm.fast.FastConfig())
    with jax.enable_x64(True):
        assert FORWARD not in _lowered(*small, dtype=jnp.float64)
