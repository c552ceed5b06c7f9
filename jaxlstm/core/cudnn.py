"""cuDNN's LSTM through ``jax.experimental.rnn``: the weight layout, and the call on a CUDA GPU.

``lstm(params, xs, impl="cudnn")`` routes here. cuDNN runs a whole stack of layers in one kernel
sequence; this module packs jaxlstm's parameters into its flat weight vector, in the layout of
PyTorch's ``nn.LSTM`` (per layer and direction ``W_ih [4H, I]``, ``W_hh [4H, H]``, then every bias
``b_ih``, ``b_hh``; gate order i, f, g, o, the same as Keras's). The fused bias goes in ``b_ih``,
zeros in ``b_hh``.

Where it applies: float32, sigmoid/tanh, no projection, no mask, no ``reverse`` (``lengths`` and an initial
state are supported). ``core.lstm`` calls cuDNN for undifferentiated calls only: its ``custom_jvp``
gives every derivative from the fast path's rules (``jax.experimental.rnn``'s ``custom_vjp`` cannot be
differentiated in forward mode). ``pack`` is plain ``jnp`` (differentiable, runs anywhere); the tests check it
on CPU through ``jax.experimental.rnn.lstm_ref``, JAX's reference for the cuDNN call. The cuDNN call
itself needs a CUDA GPU and has not run in this project's CI (no GPU there):
``benchmarks/gpu_check.py`` is the script to run on one.

Imports jax and numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional, cast

import jax
import jax.numpy as jnp

from .pytrees import BidirectionalParams, LayerParams, LSTMOutput, LSTMParams, LSTMState

__all__ = ["available", "check_supported", "pack", "unpack_reference", "lstm"]


def available() -> bool:
    """Whether the default backend can run cuDNN (a CUDA GPU)."""
    return jax.default_backend() == "gpu"


def _directions(stack: Sequence[LayerParams]) -> list[LSTMParams]:
    """Pseudo-layers in cuDNN order: layer 0 forward, layer 0 backward, layer 1 forward, ..."""
    out = []
    for layer, p in enumerate(stack):
        for direction in (p.forward, p.backward) if isinstance(p, BidirectionalParams) else (p,):
            if direction.projection is not None:
                raise ValueError(f"params[{layer}]: cuDNN's LSTM has no projection (proj_size)")
            out.append(direction)
    return out


def pack(params: LayerParams | Sequence[LayerParams]) -> jax.Array:
    """The flat cuDNN weight vector of one layer or a stack (``init_stack``), in params' dtype.

    A stack must be all unidirectional or all bidirectional (merged by concatenation), each layer
    reading what the layer below outputs, as in ``nn.LSTM``.
    """
    stack = (params,) if isinstance(params, (LSTMParams, BidirectionalParams)) else tuple(params)
    if not stack:
        raise ValueError("params: expected at least one layer, found none")
    pseudo = _directions(stack)
    weights = [w for p in pseudo for w in (p.kernel.T.ravel(), p.recurrent_kernel.T.ravel())]
    biases = []
    for p in pseudo:
        four_h = p.recurrent_kernel.shape[1]
        bias = jnp.zeros((four_h,), p.kernel.dtype) if p.bias is None else p.bias
        biases += [bias, jnp.zeros_like(bias)]
    return jnp.concatenate([*weights, *biases])


def unpack_reference(
    weights: jax.Array,
    xs: jax.Array,
    h0: jax.Array,
    c0: jax.Array,
    lengths: jax.Array,
    *,
    hidden_size: int,
    num_layers: int = 1,
    bidirectional: bool = False,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``jax.experimental.rnn.lstm_ref`` on packed weights: what cuDNN computes, on any backend.

    xs ``[B, T, I]``, h0/c0 ``[num_layers * directions, B, H]``, lengths ``[B]`` int32. Returns
    ``(ys [B, T, H * directions], h_n, c_n)``.
    """
    from jax.experimental import rnn

    input_size = xs.shape[-1]
    w_ih, w_hh, b_ih, b_hh = rnn.unpack_lstm_weights(
        weights, input_size, hidden_size, num_layers, bidirectional
    )
    return rnn.lstm_ref(
        xs, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, input_size, hidden_size, num_layers, 0.0, bidirectional
    )


def lstm(
    params: LSTMParams,
    xs: jax.Array,
    initial_state: Optional[LSTMState],
    lengths: Optional[jax.Array],
) -> LSTMOutput:
    """One layer over xs ``[N, T, I]`` with cuDNN (``core.lstm`` has checked and flattened the inputs).

    initial_state: h/c ``[N, H]`` or None; lengths ``[N]`` or None (all ``T``). Padded outputs are
    zero and the final state is each sequence's state at its own length, as in ``core.lstm``.
    """
    from jax.experimental import rnn

    batch, steps, input_size = xs.shape
    units = params.units
    if initial_state is None:
        h0 = c0 = jnp.zeros((1, batch, units), xs.dtype)
    else:
        h0, c0 = initial_state.h[None], initial_state.c[None]
    seq_lengths = jnp.full((batch,), steps, jnp.int32) if lengths is None else lengths.astype(jnp.int32)
    # jax.experimental.rnn.lstm is a custom_vjp function, untyped: it returns (y, h_n, c_n).
    ys, h_n, c_n = cast(
        tuple[jax.Array, jax.Array, jax.Array],
        rnn.lstm(
            xs,
            h0,
            c0,
            pack(params),
            seq_lengths,  # params are in xs's dtype (core.lstm cast them)
            input_size=input_size,
            hidden_size=units,
            num_layers=1,
            dropout=0.0,
            bidirectional=False,
        ),
    )
    return LSTMOutput(sequence=ys, state=LSTMState(h=h_n[0], c=c_n[0]))


def check_supported(
    params: LSTMParams, activation, recurrent_activation, mask, reverse, rd_mask, dtype
) -> None:
    """Raise a ValueError naming what ``impl='cudnn'`` cannot compute here (including: no CUDA GPU).

    ``dtype`` is the computation dtype; only float32 is allowed until a GPU run has checked others.
    """
    checks_failed = [
        (jnp.dtype(dtype) != jnp.float32, f"dtype: float32 only (found {jnp.dtype(dtype).name})"),
        (params.projection is not None, "params: cuDNN's LSTM has no projection (proj_size)"),
        (
            activation is not jnp.tanh or recurrent_activation is not jax.nn.sigmoid,
            "activation: cuDNN's LSTM computes sigmoid gates and tanh activations only",
        ),
        (mask is not None, "mask: cuDNN takes lengths (right padding), not a mask"),
        (bool(reverse), "reverse: not supported with impl='cudnn'"),
        (rd_mask is not None, "recurrent_dropout_mask: not supported with impl='cudnn'"),
    ]
    for failed, message in checks_failed:
        if failed:
            raise ValueError(f"jaxlstm: impl='cudnn': {message}; use impl='auto'")
    if not available():
        raise ValueError(
            f"jaxlstm: impl='cudnn': needs a CUDA GPU, and jax's default backend is {jax.default_backend()!r}; "
            "use impl='auto'"
        )
