"""The interface of ``native.preferred`` (the rule ``impl="auto"`` is to use): a bool for any shape,
False where the kernels cannot run (not float32, or the extension off). Its thresholds are measured
by benchmarks/native_auto.py, not tested here."""

from __future__ import annotations

import os
import subprocess
import sys

import jax.numpy as jnp
import pytest

from jaxlstm import native

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPES = [(1, 1, 1, 1), (16, 8, 4, 2), (64, 100, 128, 256), (128, 100, 512, 512), (0, 5, 3, 4), (4, 0, 3, 4)]


@pytest.mark.parametrize("shape", SHAPES)
def test_a_bool_and_false_where_the_kernels_cannot_run(shape) -> None:
    for dtype in (jnp.float32, "float32"):
        assert type(native.preferred(*shape, dtype)) is bool
    for dtype in (jnp.bfloat16, jnp.float16, jnp.float64):
        assert native.preferred(*shape, dtype) is False
    if not native.available():
        assert native.preferred(*shape, jnp.float32) is False


def test_false_without_the_extension() -> None:
    code = "import jax.numpy as jnp; from jaxlstm import native; print(native.preferred(128, 100, 512, 512, jnp.float32))"
    env = {**os.environ, "PYTHONPATH": ROOT, "JAXLSTM_NATIVE": "0", "JAX_PLATFORMS": "cpu"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "False"
