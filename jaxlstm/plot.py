"""Pictures instead of printed arrays: the states of an LSTM over time, and training curves.

    state_trajectory(params, xs)           -> LSTMState, h [B, T, out] and c [B, T, H] at every step
    plot_states(params, xs, path)          h and c per unit over time, final states marked
    training_curves(path, curves, ...)     loss vs step

Matplotlib is imported inside the functions, and figures are drawn with its Agg renderer through
``matplotlib.figure.Figure`` rather than pyplot: no display is needed, no window opens, and the
caller's pyplot backend and state are left alone. ``import jaxlstm`` stays light.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from .core import checks, step, zero_state
from .core.pytrees import LSTMParams, LSTMState

__all__ = ["state_trajectory", "plot_states", "training_curves"]


def state_trajectory(params: LSTMParams, xs: jax.Array) -> LSTMState:
    """The state after every step: ``lax.scan`` of ``jaxlstm.step``, keeping each state.

    ``lstm`` returns c only at the end; this keeps it at every step. Args: xs ``[B, T, I]``.
    Returns ``LSTMState`` with h ``[B, T, output_size]`` and c ``[B, T, units]``.
    """
    input_size, _, _ = checks.params(params)
    batch_shape, _ = checks.sequence(xs, input_size)
    if len(batch_shape) != 1:
        raise ValueError(f"xs: expected shape [batch, T, {input_size}], found {checks.fmt(np.shape(xs))}")
    return _trajectory(params, jnp.asarray(xs))


@jax.jit
def _trajectory(params: LSTMParams, xs: jax.Array) -> LSTMState:
    def advance(state: LSTMState, x_t: jax.Array) -> tuple[LSTMState, LSTMState]:
        new, _ = step(params, state, x_t)
        return new, new

    initial = zero_state(params, xs.shape[:1], xs.dtype)
    _, states = jax.lax.scan(advance, initial, jnp.swapaxes(xs, 0, 1))  # time-major for scan
    return LSTMState(h=jnp.swapaxes(states.h, 0, 1), c=jnp.swapaxes(states.c, 0, 1))


def _figure(**kwargs: Any) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)  # the Agg renderer, without touching pyplot's global backend
    return fig


def _check_path(path: str | os.PathLike) -> str:
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"path: folder {folder!r} does not exist")
    return path


def plot_states(
    params: LSTMParams, xs: jax.Array, path: str | os.PathLike, *, sequences: int = 3, dpi: int = 100
) -> None:
    """Draw h (left) and c (right) over time, one line per unit, for the first ``sequences`` of xs.

    The final memory state h_T and carry state c_T (what Keras's ``return_state`` returns) are
    marked with a star at the last step. Args: xs ``[B, T, I]``; path: a ``.png`` (or any format
    matplotlib knows by the suffix).
    """
    checks.positive_int(sequences, "sequences")
    path = _check_path(path)
    n = min(sequences, np.shape(xs)[0])
    states = state_trajectory(params, jnp.asarray(xs)[:n])
    h, c = np.asarray(states.h), np.asarray(states.c)
    t = np.arange(1, h.shape[1] + 1)

    import matplotlib

    fig = _figure(figsize=(9, 2.4 * n + 0.6))
    axes = fig.subplots(n, 2, sharex=True, squeeze=False)
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for row in range(n):
        for col, (values, symbol, final_name) in enumerate(
            ((h, "h", "final memory state"), (c, "c", "final carry state"))
        ):
            ax = axes[row, col]
            for unit in range(values.shape[-1]):
                color = colors[unit % len(colors)]
                ax.plot(t, values[row, :, unit], marker=".", color=color, label=f"unit {unit}")
                ax.plot(
                    t[-1], values[row, -1, unit], marker="*", markersize=14, color=color, linestyle="none"
                )
            ax.axhline(0.0, color="0.8", linewidth=0.8, zorder=0)
            ax.set_ylabel(f"sequence {row}\n{symbol}")
            if row == 0:
                ax.set_title(f"{symbol} over time (★ = {final_name} {symbol}_T)")
            if row == n - 1:
                ax.set_xlabel("time step")
    axes[0, 0].legend(fontsize="small", loc="best")
    fig.suptitle(f"LSTM with {c.shape[-1]} units: h = o·tanh(c) stays in (-1, 1); c is unbounded")
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)


def training_curves(
    path: str | os.PathLike,
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str = "",
    ylabel: str = "loss",
    hlines: Optional[Mapping[str, float]] = None,
    logy: bool = False,
    dpi: int = 100,
) -> None:
    """Plot named ``(steps, values)`` curves against the training step, with optional reference lines."""
    path = _check_path(path)
    fig = _figure(figsize=(7, 4))
    ax = fig.subplots()
    for name, (steps, values) in curves.items():
        if len(steps) != len(values):
            raise ValueError(f"curves[{name!r}]: {len(steps)} steps but {len(values)} values")
        ax.plot(steps, values, label=name, linewidth=1.0 if len(steps) > 200 else 1.5)
    for name, value in (hlines or {}).items():
        ax.axhline(value, linestyle="--", linewidth=1.0, color="0.4")
        ax.annotate(name, (0.01, value), xycoords=("axes fraction", "data"), va="bottom", fontsize="small")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
