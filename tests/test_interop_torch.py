"""PyTorch nn.LSTM / nn.LSTMCell state_dicts: same outputs and states as torch, and back."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from conftest import require

import jaxlstm
from jaxlstm import BidirectionalParams, LSTMParams

TOL = dict(atol=1e-5, rtol=1e-5)
B, T, I = 3, 5, 4


@pytest.fixture(scope="module")
def torch():
    return require("torch")


@pytest.fixture(scope="module")
def jt():
    from jaxlstm.interop import torch as jt

    return jt


def _randomize(torch, module, seed):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.rand(p.shape, generator=gen) * 1.2 - 0.6)
    return module


def _torch_run(torch, module, x):
    with torch.no_grad():
        y, (h, c) = module(torch.from_numpy(x))
    return y.numpy(), h.numpy(), c.numpy()


CONFIGS = {
    "one_layer": dict(hidden_size=3),
    "stacked_no_bias": dict(hidden_size=3, num_layers=2, bias=False),
    "bidirectional_stacked_proj": dict(hidden_size=3, num_layers=2, bidirectional=True, proj_size=2),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_lstm_matches_torch_and_round_trips(torch, jt, name):
    cfg = CONFIGS[name]
    module = _randomize(torch, torch.nn.LSTM(I, batch_first=True, **cfg), seed=len(name))
    x = np.random.default_rng(0).normal(size=(B, T, I)).astype(np.float32)
    y_ref, h_ref, c_ref = _torch_run(torch, module, x)

    stack = jt.from_torch(module.state_dict())
    assert len(stack) == cfg.get("num_layers", 1)
    kind = BidirectionalParams if cfg.get("bidirectional") else LSTMParams
    assert all(isinstance(p, kind) for p in stack)
    out = jaxlstm.stacked_lstm(stack, x)
    np.testing.assert_allclose(out.sequence, y_ref, **TOL)
    h_n, c_n = jaxlstm.torch_state(out.state)
    np.testing.assert_allclose(h_n, h_ref, **TOL)
    np.testing.assert_allclose(c_n, c_ref, **TOL)

    fresh = torch.nn.LSTM(I, batch_first=True, **cfg)
    fresh.load_state_dict(jt.to_torch(stack))  # strict: every key, every shape
    for a, b in zip(_torch_run(torch, fresh, x), (y_ref, h_ref, c_ref)):
        np.testing.assert_allclose(a, b, **TOL)


def test_packed_lengths_match_jaxlstm_lengths(torch, jt):
    module = _randomize(torch, torch.nn.LSTM(I, 3, batch_first=True, bidirectional=True), seed=7)
    x = np.random.default_rng(1).normal(size=(B, T, I)).astype(np.float32)
    lengths = np.array([5, 2, 4])
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        torch.from_numpy(x), torch.from_numpy(lengths), batch_first=True, enforce_sorted=False
    )
    with torch.no_grad():
        y_packed, (h_ref, c_ref) = module(packed)
    y_ref, _ = torch.nn.utils.rnn.pad_packed_sequence(y_packed, batch_first=True, total_length=T)
    (params,) = jt.from_torch(module)
    out = jaxlstm.bidirectional(params, x, lengths=lengths)
    np.testing.assert_allclose(out.sequence, y_ref.numpy(), **TOL)  # padding: zeros, as pad_packed_sequence
    h_n, c_n = jaxlstm.torch_state((out.state,))
    np.testing.assert_allclose(h_n, h_ref.numpy(), **TOL)
    np.testing.assert_allclose(c_n, c_ref.numpy(), **TOL)


@pytest.mark.parametrize("bias", [True, False])
def test_lstm_cell_matches_torch_and_round_trips(torch, jt, bias):
    cell = _randomize(torch, torch.nn.LSTMCell(I, 3, bias=bias), seed=3)
    x = np.random.default_rng(2).normal(size=(B, T, I)).astype(np.float32)
    h = c = torch.zeros(B, 3)
    ys = []
    with torch.no_grad():
        for t in range(T):
            h, c = cell(torch.from_numpy(x[:, t]), (h, c))
            ys.append(h.numpy())
    params = jt.from_torch_cell(cell.state_dict())
    assert (params.bias is None) == (not bias)
    out = jaxlstm.lstm(params, x)
    np.testing.assert_allclose(out.sequence, np.stack(ys, 1), **TOL)
    np.testing.assert_allclose(out.state.c, c.numpy(), **TOL)

    fresh = torch.nn.LSTMCell(I, 3, bias=bias)
    fresh.load_state_dict(jt.to_torch_cell(params))
    with torch.no_grad():
        h1, c1 = fresh(torch.from_numpy(x[:, 0]))
    state, y0 = jaxlstm.step(params, jaxlstm.zero_state(params, (B,)), x[:, 0])
    np.testing.assert_allclose(h1.numpy(), y0, **TOL)
    np.testing.assert_allclose(c1.numpy(), state.c, **TOL)


def test_files_pt_and_safetensors(torch, jt, tmp_path):
    require("safetensors")
    from safetensors.torch import save_file

    module = _randomize(torch, torch.nn.LSTM(I, 3, num_layers=2), seed=5)
    sd = module.state_dict()
    torch.save(sd, tmp_path / "lstm.pt")
    save_file(dict(sd), str(tmp_path / "lstm.safetensors"))
    ref = jt.from_torch(sd)
    for name in ("lstm.pt", "lstm.safetensors"):
        got = jt.from_torch(jt.load_torch_file(tmp_path / name))
        for a, b in zip(got, ref):
            for fa, fb in zip(a, b):
                assert (fa is None and fb is None) or np.array_equal(fa, fb)

    # an LSTM inside a larger model, selected by prefix
    model = torch.nn.Sequential(torch.nn.LSTM(I, 3), torch.nn.Linear(3, 1))
    torch.save(model.state_dict(), tmp_path / "model.pt")
    (params,) = jt.from_torch(jt.load_torch_file(tmp_path / "model.pt"), prefix="0")
    assert np.array_equal(params.kernel, model[0].weight_ih_l0.detach().numpy().T)


EXECUTED: list[str] = []


def _record(what: str) -> None:
    EXECUTED.append(what)


class _Payload:
    def __reduce__(self):
        return (_record, ("code from the file ran",))


def test_pickle_disguised_as_pt_is_refused_without_running_it(torch, jt, tmp_path):
    path = tmp_path / "weights.pt"
    with open(path, "wb") as f:
        pickle.dump({"weight_ih_l0": _Payload()}, f)
    with pytest.raises(
        ValueError, match=r"not a readable weights-only PyTorch file.*nothing from it was executed"
    ):
        jt.load_torch_file(path)
    assert EXECUTED == []
    # the same payload inside torch.save's zip format is refused too
    torch.save({"weight_ih_l0": _Payload()}, tmp_path / "zip.pt")
    EXECUTED.clear()
    with pytest.raises(ValueError, match="not a readable weights-only PyTorch file"):
        jt.load_torch_file(tmp_path / "zip.pt")
    assert EXECUTED == []
    # a truncated file: a clear error too
    good = tmp_path / "good.pt"
    torch.save(torch.nn.LSTM(I, 3).state_dict(), good)
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[:200])
    with pytest.raises(ValueError, match="not a readable weights-only PyTorch file"):
        jt.load_torch_file(tmp_path / "cut.pt")


def test_bad_state_dicts_name_the_tensor(torch, jt):
    sd = dict(torch.nn.LSTM(I, 3, num_layers=2).state_dict())
    sd["weight_hh_l1"] = torch.zeros(12, 4)
    with pytest.raises(ValueError, match=r"weight_hh_l1: expected shape \[12, 3\], found \[12, 4\]"):
        jt.from_torch(sd)
    sd = dict(torch.nn.LSTM(I, 3, num_layers=2).state_dict())
    sd["weight_ih_l1"] = torch.zeros(12, 5)
    with pytest.raises(ValueError, match=r"weight_ih_l1: expected shape \[12, 3\], found \[12, 5\]"):
        jt.from_torch(sd)
    with pytest.raises(ValueError, match="unexpected key 'weight'"):
        jt.from_torch(torch.nn.Linear(2, 2).state_dict())
    with pytest.raises(ValueError, match="nn.LSTMCell has keys"):
        jt.from_torch_cell(torch.nn.LSTM(I, 3).state_dict())
    layer = LSTMParams(np.zeros((3, 12), np.float32), np.zeros((3, 12), np.float32))
    mixed = (layer, BidirectionalParams(layer, layer))
    with pytest.raises(ValueError, match="bidirectional in every layer or in none"):
        jt.to_torch(mixed)
