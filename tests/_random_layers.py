"""Random layer parameters for tests, drawn with numpy: no initialiser compiles, and non-zero biases,
so that a wrongly copied or dropped weight cannot pass a comparison."""

from __future__ import annotations

from typing import Optional

import numpy as np

import jaxlstm


def random_lstm(
    rng: np.random.Generator, input_size: int, units: int, proj_size: Optional[int] = None, dtype=np.float32
) -> jaxlstm.LSTMParams:
    out = units if proj_size is None else proj_size
    draw = lambda *shape: (0.5 * rng.normal(size=shape)).astype(dtype)
    return jaxlstm.LSTMParams(
        kernel=draw(input_size, 4 * units),
        recurrent_kernel=draw(out, 4 * units),
        bias=draw(4 * units),
        projection=None if proj_size is None else draw(units, proj_size),
    )


def random_bidirectional(
    rng: np.random.Generator, input_size: int, units: int, proj_size: Optional[int] = None, dtype=np.float32
) -> jaxlstm.BidirectionalParams:
    return jaxlstm.BidirectionalParams(
        forward=random_lstm(rng, input_size, units, proj_size, dtype),
        backward=random_lstm(rng, input_size, units, proj_size, dtype),
    )
