"""Stacked, bidirectional and projected LSTMs against ``torch.nn.LSTM`` on copied weights, to 1e-5.

Covers num_layers 1 and 3, bidirectional, proj_size, batch_first True and False, initial states in
PyTorch's (h_0, c_0) layout, packed sequences with unsorted lengths, and inter-layer dropout.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest
from conftest import require

import jaxlstm
from jaxlstm import BidirectionalParams, LSTMParams

# PyTorch's CPU kernel notes that oneDNN lacks projections and falls back to its own loop: harmless.
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")

ATOL = RTOL = 1e-5
BATCH, STEPS, FEATURES, HIDDEN = 4, 7, 5, 6
# Unsorted, including the full length T and length 1 (pack_padded_sequence refuses 0).
LENGTHS = np.array([3, 7, 1, 5])


def _from_torch(module) -> tuple:
    """Our per-layer parameters from a ``torch.nn.LSTM``: transpose, and fold the two biases."""
    suffixes = ("", "_reverse") if module.bidirectional else ("",)
    layers = []
    for layer in range(module.num_layers):
        directions = []
        for suffix in suffixes:
            get = lambda name: getattr(module, f"{name}_l{layer}{suffix}").detach().numpy()  # noqa: B023
            # PyTorch's gate order i, f, g, o is Keras's i, f, c, o: only transposes are needed.
            directions.append(
                LSTMParams(
                    kernel=get("weight_ih").T,
                    recurrent_kernel=get("weight_hh").T,
                    bias=get("bias_ih") + get("bias_hh"),
                    projection=get("weight_hr").T if module.proj_size > 0 else None,
                )
            )
        layers.append(BidirectionalParams(*directions) if module.bidirectional else directions[0])
    return tuple(layers)


CONFIGS = {
    "1layer": dict(num_layers=1, bidirectional=False, proj_size=0, batch_first=True),
    "3layers": dict(num_layers=3, bidirectional=False, proj_size=0, batch_first=False),
    "bidirectional_3layers": dict(num_layers=3, bidirectional=True, proj_size=0, batch_first=True),
    "projected_bidirectional_2layers": dict(num_layers=2, bidirectional=True, proj_size=3, batch_first=False),
    "projected_1layer": dict(num_layers=1, bidirectional=False, proj_size=2, batch_first=True),
}


@functools.cache
def _make_case(name: str):
    """A torch LSTM, our copy of its weights, inputs (batch, time, features) and an initial state."""
    torch = require("torch")
    torch.manual_seed(sum(map(ord, name)))
    config = CONFIGS[name]
    module = torch.nn.LSTM(FEATURES, HIDDEN, **config).eval()
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(BATCH, STEPS, FEATURES)).astype(np.float32)
    rows = config["num_layers"] * (2 if config["bidirectional"] else 1)
    out_size = config["proj_size"] or HIDDEN
    h_0 = (0.5 * rng.normal(size=(rows, BATCH, out_size))).astype(np.float32)
    c_0 = (0.5 * rng.normal(size=(rows, BATCH, HIDDEN))).astype(np.float32)
    return torch, module, config, _from_torch(module), xs, h_0, c_0


@pytest.fixture(params=list(CONFIGS))
def case(request):
    return _make_case(request.param)


def _torch_input(torch, xs: np.ndarray, batch_first: bool):
    return torch.from_numpy(xs if batch_first else np.ascontiguousarray(xs.transpose(1, 0, 2)))


def _torch_output(output, batch_first: bool) -> np.ndarray:
    output = output.detach().numpy()
    return output if batch_first else output.transpose(1, 0, 2)


def _assert_state(ours: jaxlstm.TorchState, h_n, c_n) -> None:
    np.testing.assert_allclose(ours.h_n, h_n.detach().numpy(), atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(ours.c_n, c_n.detach().numpy(), atol=ATOL, rtol=RTOL)


def test_full_sequences_with_initial_state(case) -> None:
    torch, module, config, params, xs, h_0, c_0 = case
    with torch.no_grad():
        output, (h_n, c_n) = module(
            _torch_input(torch, xs, config["batch_first"]), (torch.from_numpy(h_0), torch.from_numpy(c_0))
        )
    ours = jaxlstm.stacked_lstm(params, xs, jaxlstm.from_torch_state(h_0, c_0, params))
    np.testing.assert_allclose(
        ours.sequence, _torch_output(output, config["batch_first"]), atol=ATOL, rtol=RTOL
    )
    _assert_state(jaxlstm.torch_state(ours.state), h_n, c_n)


def test_packed_unsorted_lengths(case) -> None:
    torch, module, config, params, xs, h_0, c_0 = case
    rnn_utils = require("torch.nn.utils.rnn")
    batch_first = config["batch_first"]
    packed = rnn_utils.pack_padded_sequence(
        _torch_input(torch, xs, batch_first),
        torch.from_numpy(LENGTHS),
        batch_first=batch_first,
        enforce_sorted=False,
    )
    with torch.no_grad():
        packed_out, (h_n, c_n) = module(packed)
    output, _ = rnn_utils.pad_packed_sequence(packed_out, batch_first=batch_first, total_length=STEPS)
    ours = jaxlstm.stacked_lstm(params, xs, lengths=LENGTHS)
    # pad_packed_sequence fills the padding with zeros; so must we.
    np.testing.assert_allclose(ours.sequence, _torch_output(output, batch_first), atol=ATOL, rtol=RTOL)
    _assert_state(jaxlstm.torch_state(ours.state), h_n, c_n)


def test_unbatched_input_and_state_layout() -> None:
    """One sequence without a batch axis: PyTorch's unbatched h_n is [layers * directions, out].
    (One configuration: the layout is the same for all, and each costs a compilation.)"""
    torch, module, config, params, xs, h_0, c_0 = _make_case("projected_bidirectional_2layers")
    with torch.no_grad():
        output, (h_n, c_n) = module(torch.from_numpy(xs[1]))
    ours = jaxlstm.stacked_lstm(params, xs[1])
    np.testing.assert_allclose(ours.sequence, output.numpy(), atol=ATOL, rtol=RTOL)
    _assert_state(jaxlstm.torch_state(ours.state), h_n, c_n)


def test_inter_layer_dropout_is_after_every_layer_but_the_last() -> None:
    """With p = 1 dropout is deterministic (everything dropped), so it can be compared with PyTorch
    in training mode: every layer but the first reads zeros, and the top output is not dropped."""
    torch = require("torch")
    torch.manual_seed(1)
    module = torch.nn.LSTM(FEATURES, HIDDEN, num_layers=2, dropout=1.0, batch_first=True).train()
    params = _from_torch(module)
    xs = np.random.default_rng(1).normal(size=(BATCH, STEPS, FEATURES)).astype(np.float32)
    with torch.no_grad():
        output, (h_n, c_n) = module(torch.from_numpy(xs))
    key = jax.random.PRNGKey(7)
    ours = jaxlstm.stacked_lstm(params, xs, dropout=1.0, deterministic=False, key=key)
    np.testing.assert_allclose(ours.sequence, output.numpy(), atol=ATOL, rtol=RTOL)
    _assert_state(jaxlstm.torch_state(ours.state), h_n, c_n)
    assert np.abs(np.asarray(ours.sequence)).min() > 0  # the last layer's output is not dropped


def test_official_converter_feeds_stacked_lstm(case) -> None:
    """``interop.torch.from_torch`` gives the same stack as this file's helper (one layout for all)."""
    torch, module, config, params, xs, h_0, c_0 = case
    from jaxlstm.interop.torch import from_torch

    converted = from_torch(module)
    assert jax.tree_util.tree_structure(converted) == jax.tree_util.tree_structure(params)
    for ours, theirs in zip(jax.tree_util.tree_leaves(converted), jax.tree_util.tree_leaves(params)):
        np.testing.assert_allclose(ours, theirs, atol=1e-7, rtol=1e-7)
