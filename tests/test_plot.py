"""Plots: ``python -m jaxlstm --plot`` writes a real PNG; the plotted states are the LSTM's own."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import require

import jaxlstm

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path, min_width: int, min_height: int) -> np.ndarray:
    image_module = require("matplotlib.image")
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 10_000  # a drawn figure, not an empty canvas
    pixels = image_module.imread(path)
    height, width = pixels.shape[:2]
    assert width >= min_width and height >= min_height
    assert pixels.std() > 0.05  # not a blank page
    return pixels


def test_demo_plot_writes_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require("matplotlib")
    from jaxlstm.__main__ import main

    path = tmp_path / "states.png"
    main(["--plot", str(path)])
    assert f"final states marked: {path}" in capsys.readouterr().out
    assert_png(path, 800, 600)


def test_state_trajectory_is_what_lstm_computes() -> None:
    from jaxlstm.plot import state_trajectory

    # The demo's shapes (2 units over [16, 8, 4]), so the compiled functions are shared.
    params = jaxlstm.init(jax.random.key(0), 4, 2)
    xs = jax.random.normal(jax.random.key(1), (16, 8, 4))
    states = state_trajectory(params, xs)
    out = jaxlstm.lstm(params, xs)
    assert states.h.shape == (16, 8, 2) and states.c.shape == (16, 8, 2)
    np.testing.assert_allclose(states.h, out.sequence, rtol=0, atol=1e-6)
    np.testing.assert_allclose(states.h[:, -1], out.state.h, rtol=0, atol=1e-6)
    np.testing.assert_allclose(states.c[:, -1], out.state.c, rtol=0, atol=1e-6)
    # c along the way: the first step from zeros is i * tanh(z_c), checked with one explicit step.
    first, _ = jaxlstm.step(params, jaxlstm.zero_state(params, (16,)), xs[:, 0])
    np.testing.assert_allclose(states.c[:, 0], first.c, rtol=0, atol=1e-6)


def test_training_curves_png(tmp_path: Path) -> None:
    require("matplotlib")
    from jaxlstm.plot import training_curves

    path = tmp_path / "curve.png"
    steps = np.arange(1, 101)
    training_curves(path, {"loss": (steps, 1.0 / steps)}, hlines={"target": 0.01}, logy=True)
    assert_png(path, 600, 350)


def test_plot_errors(tmp_path: Path) -> None:
    require("matplotlib")
    from jaxlstm.plot import plot_states, state_trajectory, training_curves

    params = jaxlstm.init(jax.random.key(0), 4, 2)
    with pytest.raises(ValueError, match="path: folder .* does not exist"):
        plot_states(params, np.zeros((2, 3, 4), np.float32), tmp_path / "missing" / "x.png")
    with pytest.raises(ValueError, match=r"xs: expected shape \[batch, T, 4\], found \[3, 4\]"):
        state_trajectory(params, np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match=r"xs: .*4"):
        state_trajectory(params, np.zeros((2, 3, 5), np.float32))
    with pytest.raises(ValueError, match=r"curves\['loss'\]: 3 steps but 2 values"):
        training_curves(tmp_path / "c.png", {"loss": ([1, 2, 3], [1.0, 2.0])})


def test_importing_jaxlstm_loads_no_plotting_or_training_peer() -> None:
    import subprocess
    import sys

    code = (
        "import sys, jaxlstm, jaxlstm.plot, jaxlstm.checkpoint, jaxlstm.sharding; "
        "print([p for p in ['matplotlib', 'optax', 'sklearn', 'tqdm', 'orbax'] if p in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
