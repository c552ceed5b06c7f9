"""What the linen and NNX modules share, once, parametrised over the flavour: their numbers against
the core, Keras 3, PyTorch and Flax's own RNN drivers; dropout; stateful use; transforms,
serialisation, training; and the conventions of issue 13 (state, layout, masks, options, error
hints, empty sequences, half-precision parameters).

Each flavour is driven through a small adapter (``Flavour.layer`` holds given params, ``fresh``
draws its own; both return a ``Layer`` that calls like a Keras layer), so one test states one
behaviour for both. What only one flavour has lives in test_linen.py / test_nnx.py. References
(core, Keras) are computed once per case and shared by the two flavours.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import require

import jaxlstm
from jaxlstm import LSTMParams, LSTMState

B, T, I, H = 3, 6, 4, 5
ATOL = 1e-6  # against the core: the same math
KERAS_ATOL = 1e-5

_rng = np.random.default_rng(13)
XS = jnp.asarray(_rng.normal(size=(B, T, I)), jnp.float32)
PARAMS = jaxlstm.init(jax.random.key(0), I, H)
STATE = LSTMState(h=jnp.asarray(_rng.normal(size=(B, H)), jnp.float32), c=jnp.full((B, H), 0.5))
MASK = jnp.asarray(_rng.random((B, T)) > 0.3)


# ----------------------------------------------------------------------------------------------
# The two flavours behind one adapter
# ----------------------------------------------------------------------------------------------


class Layer:
    """One module with its weights: call it as the flavour's module is called; ``params`` reads,
    ``load`` writes ``LSTMParams``; ``grad(loss)`` is d loss(layer) / d params as ``LSTMParams``;
    ``jit()`` a jitted call."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def load(self, params: LSTMParams) -> None:
        raise NotImplementedError

    def stored(self) -> set[str]:
        """The weight names the module stores."""
        raise NotImplementedError

    def grad(self, loss: Callable[[Callable[..., Any]], jax.Array]) -> LSTMParams:
        raise NotImplementedError

    def jit(self) -> Callable[..., Any]:
        raise NotImplementedError

    def jit_grad(
        self, loss: Callable[[Callable[..., Any], jax.Array], jax.Array]
    ) -> Callable[..., LSTMParams]:
        """``key -> d loss(layer, key) / d params``, jitted by the flavour's own ``jit``."""
        raise NotImplementedError

    def dropout_on(self, key: jax.Array) -> dict[str, Any]:
        """The call's keyword arguments that turn dropout on, drawing from ``key``."""
        raise NotImplementedError

    def dropping(self, xs: jax.Array, key: jax.Array) -> jax.Array:
        return self(xs, **self.dropout_on(key))


class _LinenLayer(Layer):
    def __init__(
        self,
        units: int,
        params: Any,
        in_features: int,
        seed: int,
        options: dict[str, Any],
        sample: Any = None,
    ):
        from jaxlstm import linen

        self.linen, self.module = linen, linen.LSTM(units, **options)
        if params is None:  # init on the shape the tests call with: its compile is then reused
            xs = jnp.zeros((B, T, in_features)) if sample is None else sample
            params = linen.get_params(self.module.init(jax.random.key(seed), xs, deterministic=True))
        self.load(params)

    @property
    def params(self) -> LSTMParams:
        return self.linen.get_params(self.variables)

    def load(self, params: LSTMParams) -> None:
        self.variables = self.linen.to_variables(params)

    def stored(self) -> set[str]:
        return set(self.variables["params"])

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.module.apply(self.variables, *args, **kwargs)

    def grad(self, loss: Callable[[Callable[..., Any]], jax.Array]) -> LSTMParams:
        grads = jax.grad(lambda v: loss(functools.partial(self.module.apply, v)))(self.variables)
        return self.linen.get_params(grads)

    def jit(self) -> Callable[..., Any]:
        return functools.partial(jax.jit(self.module.apply), self.variables)

    def jit_grad(
        self, loss: Callable[[Callable[..., Any], jax.Array], jax.Array]
    ) -> Callable[..., LSTMParams]:
        return jax.jit(lambda key: self.grad(lambda call: loss(call, key)))

    def dropout_on(self, key: jax.Array) -> dict[str, Any]:
        return {"deterministic": False, "rngs": {"dropout": key}}


class _NnxLayer(Layer):
    def __init__(
        self,
        units: int,
        params: Any,
        in_features: int,
        seed: int,
        options: dict[str, Any],
        sample: Any = None,
    ):
        from flax import nnx

        from jaxlstm import nnx as jnnx

        self.nnx = nnx
        randomised = ("dropout", "recurrent_dropout", "weight_drop", "zoneout")
        dropping = any(np.any(np.asarray(options.get(name, 0)) > 0) for name in randomised)
        if params is None:
            self.module = jnnx.LSTM(in_features, units, rngs=nnx.Rngs(seed), **options)
        else:  # a dropout stream only when dropping, as a user of from_params would
            self.module = jnnx.LSTM.from_params(params, rngs=nnx.Rngs(seed) if dropping else None, **options)

    @property
    def params(self) -> LSTMParams:
        return self.module.params

    def load(self, params: LSTMParams) -> None:
        self.module.set_params(params)

    def stored(self) -> set[str]:
        return {name for name in LSTMParams._fields if getattr(self.module, name) is not None}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    def grad(self, loss: Callable[[Callable[..., Any]], jax.Array]) -> LSTMParams:
        return self._grads(self.nnx.grad(loss)(self.module))

    @staticmethod
    def _grads(grads: Any) -> LSTMParams:
        from jaxlstm import linen

        def value(v: Any) -> Any:  # a Param, or the State of an nnx.Dict (layer_norm, peepholes)
            return v.get_value() if hasattr(v, "get_value") else {k: value(x) for k, x in v.items()}

        # linen's params tree has the same nesting: its reader turns it into LSTMParams.
        return linen.get_params({n: value(grads[n]) for n in LSTMParams._fields if n in grads})

    def jit(self) -> Callable[..., Any]:
        return functools.partial(self.nnx.jit(lambda m, *a, **k: m(*a, **k)), self.module)

    def jit_grad(
        self, loss: Callable[[Callable[..., Any], jax.Array], jax.Array]
    ) -> Callable[..., LSTMParams]:
        # nnx.grad of a module closed over by jax.jit crosses trace levels: the module is an argument.
        step = self.nnx.jit(lambda m, key: _NnxLayer._grads(self.nnx.grad(lambda m: loss(m, key))(m)))
        return functools.partial(step, self.module)

    def dropout_on(self, key: jax.Array) -> dict[str, Any]:
        return {"rngs": key}  # NNX modules are in train mode by default, as nnx.Dropout


class Flavour:
    def __init__(self, name: str):
        require("flax")
        self.name = name
        self._layer = {"linen": _LinenLayer, "nnx": _NnxLayer}[name]

    def __repr__(self) -> str:
        return self.name

    def layer(self, params: LSTMParams = PARAMS, **options: Any) -> Layer:
        """A module holding ``params``, of their variant (a linen module is told it; NNX's
        ``from_params`` reads it from the params)."""
        if self.name == "linen":
            variant = dict(
                layer_norm=params.layer_norm is not None,
                peepholes=params.peepholes is not None,
                coupled_gates=params.gates == 3,
            )
            options = {**{k: v for k, v in variant.items() if v}, **options}
        return self._layer(params.units, params, params.input_size, 0, options)

    def fresh(
        self, in_features: int = I, units: int = H, seed: int = 0, sample: Any = None, **options: Any
    ) -> Layer:
        """A module that draws its own parameters (linen: by ``init`` on ``sample``, default zeros
        ``[B, T, in_features]``)."""
        return self._layer(units, None, in_features, seed, options, sample)


@pytest.fixture(params=["linen", "nnx"], scope="module")
def flavour(request) -> Flavour:
    return Flavour(request.param)


@pytest.fixture
def make(flavour) -> Callable[..., Layer]:
    """``make(**options)``: a layer of this flavour holding ``PARAMS``."""
    return flavour.layer


_REFERENCES: dict[Any, Any] = {}


def once(key: Any, compute: Callable[[], Any]) -> Any:
    """``compute()``, once per ``key`` and test process: a reference both flavours compare to."""
    if key not in _REFERENCES:
        _REFERENCES[key] = compute()
    return _REFERENCES[key]


def assert_close(got: Any, want: Any, atol: float = ATOL) -> None:
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=atol, rtol=0)


def assert_state(got_sequence_h_c: Any, ref: jaxlstm.LSTMOutput) -> None:
    sequence, h, c = got_sequence_h_c
    assert_close(sequence, ref.sequence)
    assert_close(h, ref.state.h)
    assert_close(c, ref.state.c)


# ----------------------------------------------------------------------------------------------
# Parameters, the core's numbers, Keras's outputs
# ----------------------------------------------------------------------------------------------


def test_parameters_are_keras_layout_and_round_trip(flavour) -> None:
    layer = flavour.fresh()
    shapes = {name: jnp.shape(a) for name, a in layer.params._asdict().items() if a is not None}
    assert shapes == {"kernel": (I, 4 * H), "recurrent_kernel": (H, 4 * H), "bias": (4 * H,)}
    np.testing.assert_array_equal(layer.params.bias[H : 2 * H], 1.0)  # unit_forget_bias sets the forget block
    np.testing.assert_array_equal(layer.params.bias[:H], 0.0)
    layer.load(PARAMS)
    for got, want in zip(layer.params, PARAMS):
        np.testing.assert_array_equal(got, want)
    no_bias = flavour.fresh(use_bias=False)
    assert no_bias.stored() == {"kernel", "recurrent_kernel"} and no_bias.params.bias is None


def test_the_same_params_move_between_the_flavours_unchanged() -> None:
    # Functional, NNX and linen read one LSTMParams: no conversion between them.
    nnx_layer = Flavour("nnx").fresh(seed=3, return_sequences=True)
    linen_layer = Flavour("linen").layer(nnx_layer.params, return_sequences=True)
    assert_close(nnx_layer(XS), linen_layer(XS))
    assert_close(linen_layer(XS), jaxlstm.lstm(nnx_layer.params, XS).sequence)


_CORE_CASES = {
    "plain": ({}, {}),
    "mask": ({}, {"mask": True}),
    "reverse": ({"go_backwards": True}, {}),
    "reverse_mask_zero": ({"go_backwards": True, "zero_output_for_mask": True}, {"mask": True}),
    "initial_state": ({}, {"initial_state": True}),
}


@pytest.mark.parametrize("case", list(_CORE_CASES))
def test_matches_core(make, case) -> None:
    kwargs, call = _CORE_CASES[case]
    initial_state = STATE if call.get("initial_state") else None
    mask = MASK if call.get("mask") else None
    ref = once(
        ("core", case),
        lambda: jaxlstm.lstm(
            PARAMS,
            XS,
            initial_state,
            reverse=kwargs.get("go_backwards", False),
            mask=mask,
            zero_output_for_mask=kwargs.get("zero_output_for_mask", False),
        ),
    )
    layer = make(return_sequences=True, return_state=True, **kwargs)
    assert_state(layer(XS, initial_state=initial_state, mask=mask), ref)
    # The default output is the last output, [B, H]; initial_state and mask also positionally.
    assert_close(make(**kwargs)(XS, initial_state, mask), ref.sequence[:, -1])


@pytest.mark.parametrize("go_backwards", [False, True])
def test_lengths_match_core(make, go_backwards) -> None:
    lengths = jnp.array([6, 0, 3])
    ref = once(
        ("lengths", go_backwards),
        lambda: jaxlstm.lstm(PARAMS, XS, STATE, lengths=lengths, reverse=go_backwards),
    )
    layer = make(return_sequences=True, return_state=True, go_backwards=go_backwards)
    sequence, h, c = layer(XS, STATE, lengths=lengths)
    assert_state((sequence, h, c), ref)
    np.testing.assert_array_equal(h[1], STATE.h[1])  # length 0 keeps the initial state
    # With lengths, the last output is each sequence's own last step (step T-1 may be padding).
    last = make(go_backwards=go_backwards)(XS, STATE, lengths=lengths)
    assert_close(last, ref.state.h)
    assert not np.allclose(last[2], ref.sequence[2, -1])


# Every Keras return_sequences / return_state combination.
RETURN_COMBOS = [(False, False), (True, False), (False, True), (True, True)]


def _keras(flags: tuple[tuple[str, bool], ...]) -> tuple[LSTMParams, np.ndarray, Any, list[np.ndarray]]:
    """A Keras 3 LSTM with random weights (2 units, 4 features), its weights as ``LSTMParams``,
    inputs ``[16, 8, 4]``, the mask (or None) and its outputs."""
    keras = require("keras")
    flags_dict = dict(flags)
    rng = np.random.default_rng(1)
    layer = keras.layers.LSTM(2, **flags_dict)
    layer.build((None, None, 4))
    layer.set_weights([rng.normal(scale=0.5, size=w.shape).astype(np.float32) for w in layer.get_weights()])
    kernel, recurrent_kernel, bias = layer.get_weights()
    x = np.random.default_rng(2).normal(size=(16, 8, 4)).astype(np.float32)
    mask = np.random.default_rng(4).random((16, 8)) > 0.3 if flags_dict.get("go_backwards") else None
    return LSTMParams(kernel, recurrent_kernel, bias), x, mask, as_list(layer(x, mask=mask))


def as_list(outputs: Any) -> list[np.ndarray]:
    """A Keras-style result (one array or ``(output, h, c)``) as a list of numpy arrays."""
    if isinstance(outputs, (list, tuple)):
        return [np.asarray(a) for a in outputs]
    return [np.asarray(outputs)]


@pytest.mark.parametrize("return_sequences, return_state", RETURN_COMBOS)
def test_matches_keras(flavour, return_sequences, return_state) -> None:
    flags = dict(return_sequences=return_sequences, return_state=return_state)
    if return_sequences and return_state:  # the full output also checks masking and go_backwards
        flags.update(go_backwards=True, zero_output_for_mask=True)
    params, x, mask, reference = once(("keras", *flags.items()), lambda: _keras(tuple(flags.items())))
    ours = as_list(flavour.layer(params, **flags)(x, mask=None if mask is None else jnp.asarray(mask)))
    assert [a.shape for a in ours] == [b.shape for b in reference]
    for a, b in zip(ours, reference):
        np.testing.assert_allclose(a, b, atol=KERAS_ATOL, rtol=0)
    assert ours[0].shape == ((16, 8, 2) if return_sequences else (16, 2))


def test_batch_axes_any_number(make) -> None:
    layer = make(return_sequences=True)
    ref = layer(XS)
    assert layer(XS[0]).shape == (T, H)  # no batch axis
    assert_close(layer(XS[0]), ref[0])
    out = layer(jnp.stack([XS, XS[::-1]]))  # [2, B, T, I]
    assert out.shape == (2, B, T, H)
    assert_close(out[1], ref[::-1])


def test_bfloat16_compute_float32_params(flavour) -> None:
    fresh = flavour.fresh(dtype=jnp.bfloat16)
    assert all(a.dtype == jnp.float32 for a in jax.tree_util.tree_leaves(fresh.params))
    layer = flavour.layer(PARAMS, return_state=True, dtype=jnp.bfloat16)
    out, h, c = layer(XS)
    assert out.dtype == h.dtype == c.dtype == jnp.bfloat16
    np.testing.assert_allclose(out.astype(jnp.float32), core_last(), atol=3e-2)


def core_last() -> jax.Array:
    return once("core_last", lambda: jaxlstm.lstm(PARAMS, XS).sequence[:, -1])


# ----------------------------------------------------------------------------------------------
# Dropout
# ----------------------------------------------------------------------------------------------


def test_deterministic_or_training_false_is_no_dropout(flavour) -> None:
    plain = flavour.layer(return_sequences=True)(XS)
    dropping = flavour.layer(dropout=0.5, recurrent_dropout=0.5, return_sequences=True)
    np.testing.assert_array_equal(dropping(XS, deterministic=True), plain)
    np.testing.assert_array_equal(dropping(XS, training=False), plain)
    assert not np.allclose(dropping.dropping(XS, jax.random.key(1)), plain, atol=1e-3)
    with pytest.raises(ValueError, match="disagree"):
        dropping(XS, deterministic=True, training=True)


def input_keep_pattern(grad_xs: jax.Array) -> np.ndarray:
    """Which input features survived dropout, per sequence, from d(output)/d(xs) ``[B, T, I]``.

    A dropped feature has an exactly zero gradient at every step; asserts the pattern is the same at
    every time step (one mask per sequence) and returns it, ``[B, I]`` bool.
    """
    kept = np.asarray(grad_xs) != 0
    for t in range(1, kept.shape[1]):
        np.testing.assert_array_equal(kept[:, t], kept[:, 0], err_msg=f"mask differs at step {t}")
    return kept[:, 0]


def recurrent_keep_pattern(grad_recurrent_kernel: jax.Array) -> np.ndarray:
    """Which h units survived recurrent dropout in ONE sequence, from d(output)/d(recurrent_kernel).

    Row j of that gradient is ``sum_t (h_{t-1}[j] * keep[j]) * dz_t``: zero iff unit j is dropped.
    A fresh mask per step would zero a row only if j were dropped at every step (rate**(T-1)).
    """
    return np.any(np.asarray(grad_recurrent_kernel) != 0, axis=-1)


def assert_dropped_fraction(patterns: list[np.ndarray], rate: float, tol: float = 0.05) -> None:
    """The fraction of False over all keep patterns is ``rate`` within ``tol``."""
    dropped = 1.0 - np.mean(np.concatenate([np.ravel(p) for p in patterns]))
    assert abs(dropped - rate) < tol, f"dropped fraction {dropped:.3f}, expected {rate}"


def test_input_dropout_one_mask_per_sequence(flavour) -> None:
    rate, batch, features = 0.3, 200, 8
    xs = jax.random.normal(jax.random.key(0), (batch, 4, features))
    layer = flavour.fresh(features, H, seed=1, sample=xs, dropout=rate, return_sequences=True)

    @jax.jit
    def grad_xs(key):
        return jax.grad(lambda x: layer.dropping(x, key).sum())(xs)

    patterns = [input_keep_pattern(grad_xs(jax.random.key(k))) for k in (2, 3)]
    assert_dropped_fraction(patterns, rate)
    assert not np.array_equal(patterns[0], patterns[1])  # another key, another mask
    # Kept features are scaled by 1 / (1 - rate), as in Keras: the output is the core's on xs * mask.
    out = layer.dropping(xs, jax.random.key(2))
    scaled = xs * (patterns[0][:, None, :] / (1 - rate))
    assert_close(out, jaxlstm.lstm(layer.params, scaled).sequence)


# Both flavours draw their masks in the one keras_surface.run (the input dropout test above checks
# each flavour's key plumbing), so the recurrent mask's statistics are measured once, in linen.
@pytest.mark.parametrize("flavour", ["linen"], indirect=True)
def test_recurrent_dropout_one_mask_per_sequence(flavour) -> None:
    rate, units = 0.25, 128
    xs = jax.random.normal(jax.random.key(0), (6, 3))  # one sequence, no batch axis
    layer = flavour.fresh(3, units, seed=1, sample=xs, recurrent_dropout=rate, return_sequences=True)

    grad_recurrent = layer.jit_grad(lambda call, key: call(xs, **layer.dropout_on(key)).sum())
    patterns = [
        recurrent_keep_pattern(grad_recurrent(jax.random.key(k)).recurrent_kernel) for k in range(2, 10)
    ]
    # A fresh mask per step would zero a row with probability rate**5 ~ 0.001, not rate.
    assert_dropped_fraction(patterns, rate)
    assert not np.array_equal(patterns[0], patterns[1])
    out = layer.dropping(xs, jax.random.key(2))
    ref = jaxlstm.lstm(layer.params, xs, recurrent_dropout_mask=patterns[0] / (1 - rate))
    assert_close(out, ref.sequence)


# ----------------------------------------------------------------------------------------------
# Stateful use
# ----------------------------------------------------------------------------------------------


class _Stateful:
    """A stateful layer (return_sequences, return_state) behind ``call`` (jitted, keeps the state),
    ``kept()`` and ``reset(batch_shape=None)``, with its ``params``."""

    def __init__(self, flavour: Flavour, first: jax.Array):
        options = dict(stateful=True, return_sequences=True, return_state=True)
        if flavour.name == "linen":
            from jaxlstm.linen import LSTM, STATE_COLLECTION, get_params

            layer = LSTM(H, **options)
            self.variables = layer.init(jax.random.key(1), first)
            self.params = get_params(self.variables)
            apply = jax.jit(lambda v, x: layer.apply(v, x, mutable=[STATE_COLLECTION]))

            def call(x: jax.Array, jit: bool = True) -> Any:
                out, updates = (apply if jit else functools.partial(layer.apply, mutable=[STATE_COLLECTION]))(
                    self.variables, x
                )
                self.variables = {**self.variables, **updates}
                return out

            def reset(batch_shape: Any = None) -> None:
                _, updates = layer.apply(
                    self.variables, batch_shape, method="reset_state", mutable=[STATE_COLLECTION]
                )
                self.variables = {**self.variables, **updates}

            self.kept = lambda: self.variables[STATE_COLLECTION]["state"]
        else:
            from flax import nnx

            from jaxlstm.nnx import LSTM

            module = LSTM(I, H, rngs=nnx.Rngs(0), **options)
            self.params = module.params
            apply = nnx.jit(lambda m, x: m(x))
            call = lambda x, jit=True: apply(module, x) if jit else module(x)  # noqa: E731
            reset = module.reset_state
            self.kept = lambda: module.kept_state.get_value()
        self.call, self.reset = call, reset


def test_stateful_chunks_equal_one_pass(flavour) -> None:
    xs = jax.random.normal(jax.random.key(0), (2, 15, I))
    layer = _Stateful(flavour, xs[:, :5])
    chunks = []
    for start in (0, 5, 10):
        sequence, h, c = layer.call(xs[:, start : start + 5])
        chunks.append(sequence)
    ref = jaxlstm.lstm(layer.params, xs)
    assert_state((jnp.concatenate(chunks, axis=1), h, c), ref)
    assert_close(layer.kept().h, ref.state.h)
    assert_close(layer.kept().c, ref.state.c)

    with pytest.raises(ValueError, match=r"batch shape \[2\].*batch shape \[3\]"):
        layer.call(jnp.zeros((3, 5, I)), jit=False)
    layer.reset()
    zeroed = layer.kept()
    assert zeroed.h.shape == (2, H) and jnp.all(zeroed.h == 0) and jnp.all(zeroed.c == 0)
    assert_close(layer.call(xs[:, :5])[0], ref.sequence[:, :5])
    layer.reset(batch_shape=(3,))  # a new batch shape
    assert layer.call(jnp.zeros((3, 5, I)), jit=False)[1].shape == (3, H)


# ----------------------------------------------------------------------------------------------
# The cell in the flavour's own RNN driver (flax.linen.RNN / flax.nnx.RNN)
# ----------------------------------------------------------------------------------------------


def _rnn(flavour: Flavour, reverse: bool) -> tuple[Any, Any, Any, int]:
    """The cell holding PARAMS run by Flax's RNN: ``((c, h), sequence)``, the cell's zero carry for
    inputs ``[B, I]`` and its ``num_feature_axes``."""
    if flavour.name == "linen":
        import flax.linen as nn

        from jaxlstm.linen import LSTMCell

        rnn = nn.RNN(LSTMCell(H), return_carry=True, reverse=reverse, keep_order=False)
        drawn = rnn.init(jax.random.key(0), XS)["params"]["cell"]
        assert jax.tree_util.tree_map(jnp.shape, drawn) == {
            "kernel": (I, 4 * H),
            "recurrent_kernel": (H, 4 * H),
            "bias": (4 * H,),
        }
        cell = LSTMCell(H)
        out = rnn.apply(
            {"params": {"cell": {k: v for k, v in PARAMS._asdict().items() if v is not None}}}, XS
        )
        return out, cell.initialize_carry(jax.random.key(0), (B, I)), cell.num_feature_axes
    from flax import nnx

    from jaxlstm.nnx import LSTMCell

    cell = LSTMCell(I, H, rngs=nnx.Rngs(0))
    cell.set_params(PARAMS)
    out = nnx.RNN(cell, return_carry=True, reverse=reverse, keep_order=False)(XS)
    return out, cell.initialize_carry((B, I)), cell.num_feature_axes


@pytest.mark.parametrize("reverse", [False, True])
def test_rnn_cell_matches_layer(flavour, reverse) -> None:
    ((c, h), sequence), carry, feature_axes = _rnn(flavour, reverse)
    assert_state((sequence, h, c), once(("rnn", reverse), lambda: jaxlstm.lstm(PARAMS, XS, reverse=reverse)))
    assert carry[0].shape == carry[1].shape == (B, H) and feature_axes == 1
    assert jnp.all(carry[0] == 0) and jnp.all(carry[1] == 0)


# ----------------------------------------------------------------------------------------------
# Transforms, serialisation, training
# ----------------------------------------------------------------------------------------------


def test_jit_and_grad_match_core(make) -> None:
    layer = make(return_sequences=True)
    loss = lambda sequence: (sequence**2).sum()  # noqa: E731
    ref = once("core_mask", lambda: jaxlstm.lstm(PARAMS, XS, mask=MASK).sequence)
    assert_close(layer.jit()(XS, mask=MASK), ref)
    grads = layer.grad(lambda call: loss(call(XS, mask=MASK)))
    ref_grads = once(
        "core_grad", lambda: jax.grad(lambda p: loss(jaxlstm.lstm(p, XS, mask=MASK).sequence))(PARAMS)
    )
    for name in ("kernel", "recurrent_kernel", "bias"):
        np.testing.assert_allclose(getattr(grads, name), getattr(ref_grads, name), atol=1e-5, rtol=1e-5)


def _scan_over_layers(flavour: Flavour, xs: jax.Array, length: int = 3) -> tuple[jax.Array, LSTMParams]:
    """``length`` LSTM(I -> I) layers scanned by the flavour's own ``scan`` (parameters stacked on a
    leading axis): the output and the stacked params."""
    if flavour.name == "linen":
        import flax.linen as nn

        from jaxlstm.linen import LSTM

        class Scanned(nn.Module):
            """One scanned layer: the carry is the sequence."""

            @nn.compact
            def __call__(self, xs, _):
                return LSTM(I, return_sequences=True)(xs), None

        stack = nn.scan(Scanned, variable_axes={"params": 0}, split_rngs={"params": True}, length=length)()
        (out, _), variables = stack.init_with_output(jax.random.key(0), xs, None)
        stacked = variables["params"]["LSTM_0"]  # [3, ...] each: not one layer's LSTMParams to check
        return out, LSTMParams(*(stacked.get(name) for name in LSTMParams._fields))
    from flax import nnx

    from jaxlstm.nnx import LSTM

    @nnx.split_rngs(splits=length)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def create(rngs):
        return LSTM(I, I, return_sequences=True, rngs=rngs)

    layers = create(nnx.Rngs(0))

    @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
    def forward(x, layer):
        return layer(x)

    return forward(xs, layers), layers.params


def test_scan_over_layers(flavour) -> None:
    out, stacked = _scan_over_layers(flavour, XS)
    ref = XS
    for layer in range(3):
        ref = jaxlstm.lstm(jax.tree_util.tree_map(lambda a: a[layer], stacked), ref).sequence  # noqa: B023
    assert_close(out, ref)


def test_serialization_round_trip(flavour) -> None:
    from flax import serialization

    layer, other = flavour.fresh(seed=0, return_sequences=True), flavour.fresh(seed=1, return_sequences=True)
    assert not np.allclose(other(XS), layer(XS))
    if flavour.name == "linen":
        payload = serialization.to_bytes(layer.variables)
        other.variables = serialization.from_bytes(other.variables, payload)
    else:
        from flax import nnx

        payload = serialization.to_bytes(nnx.to_pure_dict(nnx.state(layer.module)))
        state = nnx.state(other.module)
        nnx.replace_by_pure_dict(state, serialization.from_bytes(nnx.to_pure_dict(state), payload))
        nnx.update(other.module, state)
    np.testing.assert_array_equal(other(XS), layer(XS))


def synthetic_task(seed: int = 0, batch: int = 32, steps: int = 10, features: int = 2):
    """Inputs ``[B, T, F]`` and targets ``[B, 1]``: the running mean of feature 0 minus feature 1."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, steps, features)).astype(np.float32)
    y = (x[:, :, 0].mean(axis=1) - x[:, -3:, 1].mean(axis=1))[:, None]
    return jnp.asarray(x), jnp.asarray(y)


def _train_linen(optax: Any, steps: int) -> list[float]:
    """Two LSTM layers (the first with dropout) and a Dense head, trained by optax's Adam under
    ``jax.jit``; the loss before each update."""
    import flax.linen as nn

    from jaxlstm.linen import LSTM

    class TwoLayers(nn.Module):
        @nn.compact
        def __call__(self, x, deterministic):
            x = LSTM(8, return_sequences=True, dropout=0.1)(x, deterministic=deterministic)
            return nn.Dense(1)(LSTM(8)(x))

    x, y = synthetic_task()
    model = TwoLayers()
    params = model.init(jax.random.key(0), x, True)["params"]
    optimizer = optax.adam(1e-2)
    opt_state = optimizer.init(params)

    def loss_fn(params, key):
        pred = model.apply({"params": params}, x, False, rngs={"dropout": key})
        return jnp.mean((pred - y) ** 2)

    @jax.jit
    def train_step(params, opt_state, key):
        loss, grads = jax.value_and_grad(loss_fn)(params, key)
        updates, opt_state = optimizer.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, loss

    losses = []
    for step in range(steps):
        params, opt_state, loss = train_step(params, opt_state, jax.random.key(step))
        losses.append(float(loss))
    return losses


def _train_nnx(optax: Any, steps: int) -> list[float]:
    """Two LSTM layers and a Linear head, trained by ``nnx.Optimizer`` (Adam) under ``nnx.jit``."""
    from flax import nnx

    from jaxlstm.nnx import LSTM

    class TwoLayers(nnx.Module):
        def __init__(self, rngs: nnx.Rngs):
            self.first = LSTM(2, 8, return_sequences=True, rngs=rngs)
            self.second = LSTM(8, 8, rngs=rngs)
            self.head = nnx.Linear(8, 1, rngs=rngs)

        def __call__(self, x):
            return self.head(self.second(self.first(x)))

    x, y = synthetic_task(seed=1)
    model = TwoLayers(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

    @nnx.jit
    def train_step(model, optimizer):
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
        optimizer.update(model, grads)
        return loss

    return [float(train_step(model, optimizer)) for _ in range(steps)]


def test_two_layer_model_trains(flavour) -> None:
    optax = require("optax")
    # Each step returns the loss before its update: the 51st is the loss after 50 Adam steps.
    losses = {"linen": _train_linen, "nnx": _train_nnx}[flavour.name](optax, 51)
    assert losses[50] < 0.5 * losses[0], f"loss {losses[0]:.4f} -> {losses[50]:.4f}"


# ----------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------


def test_bad_input_errors(make, flavour) -> None:
    layer = make()
    with pytest.raises(ValueError, match=r"inputs: expected shape \[\.\.\., T, 4\].*rank 1"):
        layer(jnp.zeros((I,)))
    with pytest.raises(ValueError, match=r"inputs: expected 4 features.*\[3, 6, 7\]"):
        layer(jnp.zeros((B, T, 7)))
    with pytest.raises(TypeError, match="inputs: expected a floating-point array"):
        layer(jnp.zeros((B, T, I), jnp.int32))
    with pytest.raises(ValueError, match=r"initial_state.h: expected shape \[3, 5\].*found \[3, 4\]"):
        layer(XS, initial_state=LSTMState(h=jnp.zeros((B, 4)), c=jnp.zeros((B, H))))
    with pytest.raises(ValueError, match=r"initial_state.c: expected shape \[3, 5\].*found \[2, 5\]"):
        layer(XS, LSTMState(h=jnp.zeros((B, H)), c=jnp.zeros((2, H))))
    with pytest.raises(ValueError, match=r"initial_state.h: expected shape \[3, 5\]"):
        layer(XS, [jnp.zeros((B, H + 1)), jnp.zeros((B, H))])  # Keras-style [h, c]
    with pytest.raises(TypeError, match="initial_state: expected LSTMState"):
        layer(XS, initial_state=jnp.zeros((B, H)))
    with pytest.raises(ValueError, match=r"mask: expected shape \[3, 6\]"):
        layer(XS, mask=jnp.ones((B, T + 1), bool))
    for bad in (1.5, -0.1):
        with pytest.raises(ValueError, match=r"dropout: expected a float in \[0, 1\]"):
            flavour.fresh(dropout=bad)
        with pytest.raises(ValueError, match=r"recurrent_dropout: expected a float in \[0, 1\]"):
            flavour.fresh(recurrent_dropout=bad)
    with pytest.raises(ValueError, match="units: expected a positive int"):
        flavour.fresh(units=0)
    with pytest.raises(ValueError, match="kernel_initializer: unknown initializer"):
        flavour.fresh(kernel_initializer="nope")
    with pytest.raises(ValueError, match="unroll: expected a bool or a positive int"):
        flavour.fresh(unroll=0)
    with pytest.raises(ValueError, match="reset_state: this LSTM is not stateful"):
        _reset_state(flavour, layer)


def _reset_state(flavour: Flavour, layer: Layer) -> None:
    if flavour.name == "linen":
        layer.module.apply(layer.variables, method="reset_state", mutable=["lstm_state"])
    else:
        layer.module.reset_state()


# ----------------------------------------------------------------------------------------------
# State: a bare tuple is ambiguous; LSTMState and Keras's list are not
# ----------------------------------------------------------------------------------------------


def test_bare_tuple_state_is_refused_everywhere(make) -> None:
    # (c, h) is Flax's carry and (h, c) Keras's order: a tuple used to be read as (h, c) silently.
    layer = make(return_sequences=True)
    for call in (lambda s: layer(XS, s), lambda s: jaxlstm.lstm(PARAMS, XS, s)):
        with pytest.raises(TypeError, match=r"ambiguous.*LSTMState\(h=\.\.\., c=\.\.\.\).*from_flax_carry"):
            call((STATE.c, STATE.h))
    expected = jaxlstm.lstm(PARAMS, XS, STATE).sequence
    np.testing.assert_allclose(layer(XS, [STATE.h, STATE.c]), expected, atol=ATOL)  # Keras's list
    carry = STATE.to_flax_carry()
    np.testing.assert_allclose(layer(XS, LSTMState.from_flax_carry(carry)), expected, atol=ATOL)


# ----------------------------------------------------------------------------------------------
# Layout, masks, options
# ----------------------------------------------------------------------------------------------


def test_time_major_matches_pytorch_default_layout(make) -> None:
    torch = require("torch")
    from jaxlstm.interop.torch import to_torch

    module = torch.nn.LSTM(I, H)  # batch_first=False: [T, B, I]
    module.load_state_dict(to_torch(PARAMS))
    xs_tb = np.swapaxes(np.asarray(XS), 0, 1)
    with torch.no_grad():
        ref, (h_n, c_n) = module(torch.from_numpy(xs_tb))
    for sequence, h, c in (
        make(time_major=True, return_sequences=True, return_state=True)(jnp.asarray(xs_tb)),
        (lambda out: (out.sequence, out.state.h, out.state.c))(
            jaxlstm.lstm(PARAMS, jnp.asarray(xs_tb), time_major=True)
        ),
    ):
        assert sequence.shape == (T, B, H)
        np.testing.assert_allclose(sequence, ref.numpy(), atol=1e-5)
        np.testing.assert_allclose(h, h_n[0].numpy(), atol=1e-5)
        np.testing.assert_allclose(c, c_n[0].numpy(), atol=1e-5)


def test_time_major_layers_match_batch_major() -> None:
    # stacked_lstm / bidirectional (parity-tested batch-major) read [T, B, I] and write [T, B, F].
    stack = jaxlstm.init_stack(jax.random.key(1), I, H, num_layers=2, bidirectional=True)
    xs_tb = jnp.swapaxes(XS, 0, 1)
    for run in (
        lambda x, m, **kw: jaxlstm.stacked_lstm(stack, x, None, m, **kw),
        lambda x, m, **kw: jaxlstm.bidirectional(stack[0], x, None, m, **kw),
    ):
        batch_major = run(XS, MASK)
        time_major = run(xs_tb, MASK.T, time_major=True)
        np.testing.assert_allclose(jnp.swapaxes(time_major.sequence, 0, 1), batch_major.sequence, atol=ATOL)


def test_numeric_01_masks_are_bool_masks(make) -> None:
    # Keras accepts a float or int 0/1 mask; any other value is refused while it can be seen.
    layer = make(return_sequences=True)
    expected = layer(XS, None, MASK)
    for dtype in (jnp.float32, jnp.int32):
        np.testing.assert_allclose(layer(XS, None, MASK.astype(dtype)), expected, atol=ATOL)
        np.testing.assert_allclose(
            jaxlstm.lstm(PARAMS, XS, None, MASK.astype(dtype)).sequence, expected, atol=ATOL
        )
    with pytest.raises(ValueError, match="mask: expected bool or 0/1 values"):
        layer(XS, None, MASK * 2.0)


@pytest.mark.parametrize("value", [0, 1, "True", None])
def test_boolean_options_must_be_bools(value) -> None:
    # PyTorch: "bias should be of type bool"; a truthy 0/1/"True" used to be taken silently.
    require("flax")
    from flax import nnx

    from jaxlstm import linen
    from jaxlstm import nnx as jnnx

    for build in (
        lambda: jaxlstm.init(jax.random.key(0), I, H, use_bias=value),
        lambda: linen.LSTM(H, use_bias=value).init(jax.random.key(0), XS),
        lambda: jnnx.LSTM(I, H, use_bias=value, rngs=nnx.Rngs(0)),
        lambda: jnnx.LSTM(I, H, return_sequences=value, rngs=nnx.Rngs(0)),
        lambda: jaxlstm.lstm(PARAMS, XS, reverse=value),
    ):
        with pytest.raises(TypeError, match=r"expected a bool \(True or False\)"):
            build()


def test_unroll_false_works_in_stacks_too() -> None:
    stack = jaxlstm.init_stack(jax.random.key(1), I, H, num_layers=2)
    np.testing.assert_allclose(
        jaxlstm.stacked_lstm(stack, XS, unroll=False).sequence,
        jaxlstm.stacked_lstm(stack, XS).sequence,
        atol=ATOL,
    )


# ----------------------------------------------------------------------------------------------
# Parameters: half precision, hints for the likely mistakes
# ----------------------------------------------------------------------------------------------


def test_half_precision_parameters_are_drawn_in_float32_and_cast(flavour) -> None:
    # The orthogonal initialiser's QR has no bfloat16 kernel: this used to raise NotImplementedError.
    half, full = flavour.fresh(param_dtype=jnp.bfloat16).params, flavour.fresh().params
    for name in ("kernel", "recurrent_kernel", "bias"):
        a, b = getattr(half, name), getattr(full, name)
        assert a.dtype == jnp.bfloat16
        np.testing.assert_array_equal(a, b.astype(jnp.bfloat16))


def test_pytorch_layout_weights_get_a_hint(make) -> None:
    torch_like = jaxlstm.LSTMParams(PARAMS.kernel.T, PARAMS.recurrent_kernel.T, PARAMS.bias)
    with pytest.raises(ValueError, match="PyTorch's layout.*from_torch"):
        jaxlstm.lstm(torch_like, XS)
    with pytest.raises(ValueError, match="PyTorch's layout.*from_torch"):
        jaxlstm.bidirectional(jaxlstm.BidirectionalParams(torch_like, torch_like), XS)


def test_swapped_nnx_arguments_get_a_hint() -> None:
    require("flax")
    from flax import nnx

    from jaxlstm import nnx as jnnx

    layer = jnnx.LSTM(H, I, rngs=nnx.Rngs(0))  # meant LSTM(in_features=I, units=H)
    with pytest.raises(ValueError, match=r"takes \(in_features, units\): was it built as LSTM\(4, 5\)"):
        layer(jnp.ones((B, T, I)))


def test_missing_bidirectional_kernel_is_our_message() -> None:
    # Used to be AttributeError: 'NoneType' object has no attribute 'shape'.
    broken = jaxlstm.BidirectionalParams(
        jaxlstm.LSTMParams(None, PARAMS.recurrent_kernel, PARAMS.bias), PARAMS
    )
    with pytest.raises(ValueError, match=r"params\.forward\.kernel: missing"):
        jaxlstm.bidirectional(broken, XS)


# ----------------------------------------------------------------------------------------------
# Dropout RNG, empty sequences
# ----------------------------------------------------------------------------------------------


def test_linen_dropout_without_a_dropout_rng_is_our_message() -> None:
    require("flax")
    from jaxlstm import linen

    layer = linen.LSTM(H, dropout=0.5)
    with pytest.raises(ValueError, match=r"no 'dropout' RNG was given.*rngs=\{'dropout': key\}"):
        layer.apply(linen.to_variables(PARAMS), XS, deterministic=False)


def test_zero_time_steps(make) -> None:
    # A layer's output is its last step's, and an empty sequence has none: refused, as PyTorch does.
    # The functional lstm returns the empty sequence and the initial state (what a scan of 0 steps is).
    empty = jnp.zeros((B, 0, I))
    for options in ({}, {"return_sequences": True}):
        with pytest.raises(ValueError, match="inputs: expected at least one time step.*T = 0"):
            make(**options)(empty)
    out = jaxlstm.lstm(PARAMS, empty, STATE)
    assert out.sequence.shape == (B, 0, H)
    np.testing.assert_array_equal(out.state.h, STATE.h)


def test_bidirectional_module_name_is_the_function_and_shadows_no_module() -> None:
    import pathlib
    import types

    # Before, `import jaxlstm.bidirectional as m` silently gave the function in place of the module:
    # the module is now private, so the name means one thing.
    assert callable(jaxlstm.bidirectional) and not isinstance(jaxlstm.bidirectional, types.ModuleType)
    assert not (pathlib.Path(jaxlstm.__file__).parent / "bidirectional.py").exists()


# ----------------------------------------------------------------------------------------------
# The variants (issue 15): each module with each variant against jaxlstm.lstm on its own params
# ----------------------------------------------------------------------------------------------

_WEIGHT_FLAGS = ("layer_norm", "peepholes", "coupled_gates")
WEIGHT_VARIANTS = {
    "layer_norm": dict(layer_norm=True),
    "peepholes": dict(peepholes=True),
    "coupled_gates": dict(coupled_gates=True),
    "all": dict(layer_norm=True, peepholes=True, coupled_gates=True),
}
RESETS = jnp.asarray(_rng.random((B, T)) < 0.3)
LENGTHS = jnp.array([6, 2, 4])


def variant_params(**flags: bool) -> LSTMParams:
    """``jaxlstm.init``'s params of the variant with every leaf moved off its initial value (gains
    of 1 and offsets of 0 would hide a misplaced one)."""
    params = jaxlstm.init(jax.random.key(7), I, H, **flags)
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.key(8), len(leaves))
    moved = [a + 0.3 * jax.random.normal(k, a.shape) for a, k in zip(leaves, keys)]
    return jax.tree_util.tree_unflatten(tree, moved)


def _variant(flags: dict[str, bool]) -> LSTMParams:
    return once(("variant params", tuple(sorted(flags.items()))), lambda: variant_params(**flags))


# case: (module options, call arguments); the functional options are the module's, less the
# weight flags (they are in the params), with go_backwards as reverse.
_VARIANT_CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "layer_norm": (dict(layer_norm=True), {}),
    "layer_norm_normalised_carry": (
        dict(layer_norm=True, layer_norm_carry="normalised", layer_norm_epsilon=1e-5),
        dict(initial_state=STATE),
    ),
    "peepholes_mask_backwards": (dict(peepholes=True, go_backwards=True), dict(mask=MASK)),
    "coupled_gates_lengths": (dict(coupled_gates=True), dict(lengths=LENGTHS)),
    "all_mask_state": (
        dict(layer_norm=True, peepholes=True, coupled_gates=True, zero_output_for_mask=True),
        dict(mask=MASK, initial_state=STATE),
    ),
    "zoneout_evaluation": (dict(zoneout=(0.2, 0.4), peepholes=True), dict(deterministic=True)),
    "carry_dtype": (dict(dtype=jnp.bfloat16, carry_dtype=jnp.float32, layer_norm=True), {}),
    "resets_mask_backwards": (dict(go_backwards=True), dict(resets=RESETS, mask=MASK)),
    "resets_lengths_state": (dict(peepholes=True), dict(resets=RESETS, lengths=LENGTHS, initial_state=STATE)),
}


@pytest.mark.parametrize("case", list(_VARIANT_CASES))
def test_variant_matches_core(flavour, case) -> None:
    options, call = _VARIANT_CASES[case]
    params = _variant({k: v for k, v in options.items() if k in _WEIGHT_FLAGS})
    functional = {
        ("reverse" if k == "go_backwards" else k): v for k, v in options.items() if k not in _WEIGHT_FLAGS
    }
    inputs = {k: v for k, v in call.items() if k != "deterministic"}
    ref = once(("variant", case), lambda: jaxlstm.lstm(params, XS, **functional, **inputs))
    layer = flavour.layer(params, return_sequences=True, return_state=True, **options)
    sequence, h, c = layer(XS, **call)
    if "carry_dtype" in options:  # bfloat16 outputs, float32 c: the same computation, so 1 ulp at most
        assert sequence.dtype == h.dtype == jnp.bfloat16 and c.dtype == jnp.float32
        for got, want in zip((sequence, h, c), (ref.sequence, ref.state.h, ref.state.c)):
            assert_close(got.astype(jnp.float32), want.astype(jnp.float32), atol=1e-2)
    else:
        assert_state((sequence, h, c), ref)
    # The variant matters here (so the comparison above can fail): the plain module differs.
    plain = flavour.layer(_variant({}), return_sequences=True)(XS, **call)
    assert not np.allclose(np.asarray(sequence, np.float32), np.asarray(plain, np.float32), atol=1e-3)


def test_resets_time_major(flavour) -> None:
    xs_t, resets_t, mask_t = jnp.swapaxes(XS, 0, 1), RESETS.T, MASK.T
    ref = once("resets time major", lambda: jaxlstm.lstm(PARAMS, XS, resets=RESETS, mask=MASK))
    layer = flavour.layer(return_sequences=True, time_major=True)
    assert_close(layer(xs_t, mask=mask_t, resets=resets_t), jnp.swapaxes(ref.sequence, 0, 1))


@pytest.mark.parametrize("variant", list(WEIGHT_VARIANTS))
def test_variant_params_shapes_and_round_trip(flavour, variant) -> None:
    flags = WEIGHT_VARIANTS[variant]
    layer = flavour.fresh(**flags)
    drawn, expected = layer.params, jaxlstm.init(jax.random.key(0), I, H, **flags)
    shapes = lambda p: jax.tree_util.tree_map(jnp.shape, p)  # noqa: E731
    assert jax.tree_util.tree_structure(drawn) == jax.tree_util.tree_structure(expected)
    assert shapes(drawn) == shapes(expected)
    assert layer.stored() == {n for n, v in expected._asdict().items() if v is not None}
    forget = slice(0, H) if flags.get("coupled_gates") else slice(H, 2 * H)
    np.testing.assert_array_equal(drawn.bias[forget], 1.0)  # unit_forget_bias: the forget block
    if drawn.layer_norm is not None:
        np.testing.assert_array_equal(drawn.layer_norm.x_gain, 1.0)
        np.testing.assert_array_equal(drawn.layer_norm.c_offset, 0.0)
    given = _variant(flags)
    layer.load(given)  # linen to_variables / NNX set_params, then read back by get_params / .params
    for got, want in zip(
        jax.tree_util.tree_leaves(layer.params), jax.tree_util.tree_leaves(given), strict=True
    ):
        np.testing.assert_array_equal(got, want)
    held = flavour.layer(given, return_sequences=True)  # linen variables / NNX from_params
    assert_close(held(XS), jaxlstm.lstm(given, XS).sequence)
    # Params of another variant are refused, naming the field.
    plain, field = _variant({}), "kernel" if "coupled_gates" in flags else next(iter(flags))
    with pytest.raises(ValueError, match=rf"params\.{field}: "):
        if isinstance(held, _NnxLayer):
            held.load(plain)
        else:
            held.module.apply(held.linen.to_variables(plain), XS)


def test_variant_cell_matches_core(flavour) -> None:
    """The cell in Flax's RNN driver: every weight variant, the normalised carry, and zoneout in
    its evaluation form (the cell's only form)."""
    flags = WEIGHT_VARIANTS["all"]
    params = _variant(flags)
    options = dict(layer_norm_carry="normalised", zoneout=(0.3, 0.1))
    if flavour.name == "linen":
        import flax.linen as nn

        from jaxlstm.linen import LSTMCell, to_variables

        rnn = nn.RNN(LSTMCell(H, **flags, **options), return_carry=True)
        (c, h), sequence = rnn.apply({"params": {"cell": to_variables(params)["params"]}}, XS)
    else:
        from flax import nnx

        from jaxlstm.nnx import LSTMCell

        cell = LSTMCell.from_params(params, **options)
        (c, h), sequence = nnx.RNN(cell, return_carry=True)(XS)
    assert_state((sequence, h, c), jaxlstm.lstm(params, XS, **options))


def _grads_of(layer: Layer, xs: jax.Array, keys: range) -> list[LSTMParams]:
    grad = layer.jit_grad(lambda call, key: call(xs, **layer.dropout_on(key)).sum())
    return [grad(jax.random.key(k)) for k in keys]


def test_per_gate_dropout_masks_are_keras_3s(flavour) -> None:
    """``dropout_masks="per_gate"``: as Keras 3's LSTM with ``recurrent_dropout > 0``, 4 independent
    masks (one per gate i, f, c, o) for h and 4 for the input, each drawn once per call (the same at
    every step). Read back from the gradients of one sequence: row n of gate block g of
    d out / d kernel (recurrent_kernel) is zero iff input feature (unit) n is dropped for gate g."""
    rate_x, rate_h, features, units = 0.3, 0.4, 24, 24
    xs = jax.random.normal(jax.random.key(0), (T, features))  # one sequence, no batch axis
    masks = dict(dropout=rate_x, recurrent_dropout=rate_h, dropout_masks="per_gate")
    layer = flavour.fresh(features, units, seed=1, sample=xs, return_sequences=True, **masks)
    grads = _grads_of(layer, xs, range(2, 6))
    kept = lambda g, n: np.any(np.asarray(g).reshape(n, 4, units) != 0, axis=-1).T  # noqa: E731 [4, n]
    inputs = [kept(g.kernel, features) for g in grads]
    recurrent = [kept(g.recurrent_kernel, units) for g in grads]
    # A fresh mask per step would zero a row with probability rate**T, not rate.
    assert_dropped_fraction(inputs, rate_x, tol=0.08)
    assert_dropped_fraction(recurrent, rate_h, tol=0.08)
    for patterns, rate in ((inputs, rate_x), (recurrent, rate_h)):
        # Independent gates agree on a unit with probability rate^2 + (1-rate)^2 (0.58 / 0.52);
        # one shared mask would agree always.
        agree = np.mean([np.mean(p[a] == p[b]) for p in patterns for a in range(4) for b in range(a)])
        assert abs(agree - (rate**2 + (1 - rate) ** 2)) < 0.1, agree
    # The output is the core's with those masks per gate, scaled by 1 / (1 - rate) as in Keras.
    out = layer.dropping(xs, jax.random.key(2))
    ref = jaxlstm.lstm(
        layer.params,
        xs,
        dropout_masks="per_gate",
        input_dropout_mask=inputs[0] / (1 - rate_x),
        recurrent_dropout_mask=recurrent[0] / (1 - rate_h),
    )
    assert_close(out, ref.sequence)
    # One mask shared by the gates (the default) is a different model.
    shared = jaxlstm.lstm(layer.params, xs, input_dropout_mask=inputs[0][0] / (1 - rate_x))
    assert not np.allclose(out, shared.sequence, atol=1e-3)
    # Per example, as Keras's [batch, n] masks: two copies of one sequence get different masks.
    pair = np.asarray(layer.dropping(jnp.stack([xs, xs]), jax.random.key(2)))
    assert not np.allclose(pair[0], pair[1], atol=1e-3)


def test_weight_drop(flavour) -> None:
    """DropConnect on recurrent_kernel: one [H, 4H] mask per call in training, shared by the batch
    (read back as the exact zeros of d out / d recurrent_kernel), nothing in evaluation."""
    rate, units = 0.4, 16
    xs = jax.random.normal(jax.random.key(0), (B, T, I))
    layer = flavour.fresh(I, units, seed=1, sample=xs, weight_drop=rate, return_sequences=True)
    params = layer.params
    evaluation = layer(xs, deterministic=True)
    assert_close(evaluation, jaxlstm.lstm(params, xs).sequence)
    patterns = [np.asarray(g.recurrent_kernel) != 0 for g in _grads_of(layer, xs, range(2, 4))]
    assert_dropped_fraction(patterns, rate)
    assert not np.array_equal(patterns[0], patterns[1])  # another key, another mask
    out = layer.dropping(xs, jax.random.key(2))
    assert not np.allclose(out, evaluation, atol=1e-3)
    np.testing.assert_array_equal(out, layer.dropping(xs, jax.random.key(2)))  # the key decides
    ref = jaxlstm.lstm(params, xs, weight_drop_mask=patterns[0] / (1 - rate))
    assert_close(out, ref.sequence)


def test_zoneout_training_masks(flavour) -> None:
    """Training zoneout on h: each unit keeps its previous h exactly with probability z_h, per step
    and per unit, independently (a fixed seed; 4-sigma tolerances); evaluation is the expectation."""
    z_h, batch, units = 0.3, 64, 16
    xs = jax.random.normal(jax.random.key(0), (batch, T, I))
    layer = flavour.fresh(I, units, seed=1, sample=xs, zoneout=(0.0, z_h), return_sequences=True)
    out = np.asarray(layer.dropping(xs, jax.random.key(3)))
    np.testing.assert_array_equal(out, layer.dropping(xs, jax.random.key(3)))
    kept = out[:, 1:] == out[:, :-1]  # [batch, T-1, units]: h_t == h_{t-1} exactly
    n = kept.size
    assert abs(kept.mean() - z_h) < 4 * np.sqrt(z_h * (1 - z_h) / n), kept.mean()
    k = kept.astype(float) - kept.mean()
    for lagged in (k[:, 1:] * k[:, :-1], k[..., 1:] * k[..., :-1]):  # across steps, across units
        assert abs(lagged.mean() / k.var()) < 4 / np.sqrt(lagged.size)
    evaluation = layer(xs, deterministic=True)
    assert_close(evaluation, jaxlstm.lstm(layer.params, xs, zoneout=(0.0, z_h)).sequence)
    assert not np.allclose(out, evaluation, atol=1e-3)


def test_zoneout_and_weight_drop_need_the_mode(flavour) -> None:
    """Zoneout and weight drop count as dropout: linen must be told deterministic; NNX (in train
    mode by default) needs a dropout RNG stream."""
    for options in (dict(zoneout=0.1), dict(weight_drop=0.2)):
        layer: Any = flavour.layer(**options)
        match = "deterministic: dropout is > 0"
        if flavour.name == "nnx":  # from_params without rngs: no dropout stream
            from jaxlstm import nnx as jnnx

            layer, match = jnnx.LSTM.from_params(PARAMS, **options), "rngs: dropout is on"
        with pytest.raises(ValueError, match=match):
            layer(XS)
        want = jaxlstm.lstm(PARAMS, XS, zoneout=options.get("zoneout", 0.0)).sequence[:, -1]
        assert_close(layer(XS, deterministic=True), want)


def test_cell_carry_dtype_in_the_rnn_driver(flavour) -> None:
    """bfloat16 compute with a float32 carry: the cell's zero carry has the dtypes its step returns
    (h bfloat16, c float32), so Flax's RNN scan runs, and the numbers are the core's."""
    options = dict(dtype=jnp.bfloat16, carry_dtype=jnp.float32)
    if flavour.name == "linen":
        import flax.linen as nn

        from jaxlstm.linen import LSTMCell, to_variables

        cell = LSTMCell(H, **options)
        (c, h), sequence = nn.RNN(cell, return_carry=True).apply(
            {"params": {"cell": to_variables(PARAMS)["params"]}}, XS
        )
        carry = cell.initialize_carry(jax.random.key(0), (B, I))
    else:
        from flax import nnx

        from jaxlstm.nnx import LSTMCell

        cell = LSTMCell.from_params(PARAMS, **options)
        (c, h), sequence = nnx.RNN(cell, return_carry=True)(XS)
        carry = cell.initialize_carry((B, I))
    assert (carry[0].dtype, carry[1].dtype) == (jnp.float32, jnp.bfloat16)
    assert sequence.dtype == h.dtype == jnp.bfloat16 and c.dtype == jnp.float32
    ref = jaxlstm.lstm(PARAMS, XS, **options)
    assert_close(sequence.astype(jnp.float32), ref.sequence.astype(jnp.float32), atol=1e-2)
    assert_close(c, ref.state.c, atol=1e-2)
