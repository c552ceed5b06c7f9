"""Cases shared by the transformation-matrix tests (``tests/test_transform_*.py``, issue 12).

The matrix is ``transformation x wrapping x entry point``. Every case is a function
``f(p) -> y`` of one flat float64 vector ``p`` (parameters, inputs and initial state, raveled) to
one flat vector ``y`` (every output leaf, raveled), built once for the implementation under test
(the default path: no ``impl`` argument at all, or a ``FastConfig``) and once for the reference
scan (``impl="scan"``). Flat vectors keep every derivative a plain matrix, so each transformation's
expected value follows from three reference quantities computed once per case: ``y``, the Jacobian
``J`` and the Hessian ``Hs`` of the scalar ``<w, y>`` (``jvp = J t``, ``vjp = J^T w``,
``hvp = Hs t``, ...). That is one reference per case instead of one per test.

Everything runs in float64 (1e-10 agreement), switched on per test by the ``x64`` fixture so that
no other test file in the same worker sees it: ``jax.enable_x64`` is a context manager in jax 0.10,
and jit caches are keyed on it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.flatten_util import ravel_pytree

import jaxlstm
from jaxlstm.fast import FastConfig

B, T, I, H = 2, 3, 2, 3
AUTO = None  # the default path: the entry point is called without any impl argument
TOLERANCE = 1e-10

Flat = Callable[[jax.Array], jax.Array]


@pytest.fixture(autouse=True)
def x64() -> Iterator[None]:
    """float64 for one test only (import this fixture into a test module to use it there)."""
    with jax.enable_x64(True):
        yield


def impl_kwargs(impl: Any) -> dict[str, Any]:
    """``{}`` for the default path (the entry point's own default), else ``{"impl": impl}``."""
    return {} if impl is AUTO else {"impl": impl}


# ----------------------------------------------------------------------------------------------
# Data (created lazily: inside a test, so in float64)
# ----------------------------------------------------------------------------------------------


def _f64(tree: Any) -> Any:
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), tree)


def _normal(seed: int, shape: tuple[int, ...]) -> jax.Array:
    return jax.random.normal(jax.random.key(seed), shape, jnp.float64)


def _state(seed: int, units: int = H) -> jaxlstm.LSTMState:
    return jaxlstm.LSTMState(h=0.5 * _normal(seed, (B, units)), c=0.5 * _normal(seed + 1, (B, units)))


def _bi_state(seed: int) -> jaxlstm.BidirectionalState:
    return jaxlstm.BidirectionalState(forward=_state(seed), backward=_state(seed + 2))


def _xs(seed: int = 1) -> jax.Array:
    return _normal(seed, (B, T, I))


MASK = np.array([[True, False, True], [True, True, False]])
LENGTHS = np.array([T, 1])


def _params(seed: int, input_size: int = I) -> jaxlstm.LSTMParams:
    # A non-zero bias so that every parameter's derivative is exercised at a generic point.
    params = _f64(jaxlstm.init(jax.random.key(seed), input_size, H))
    return params._replace(bias=params.bias + 0.1 * _normal(seed + 50, params.bias.shape))


def _bi_params(seed: int, input_size: int = I) -> jaxlstm.BidirectionalParams:
    return jaxlstm.BidirectionalParams(_params(seed, input_size), _params(seed + 1, input_size))


# ----------------------------------------------------------------------------------------------
# Cases: name -> (tree, run) where run(impl) is a function of the tree
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One entry point in one configuration.

    Attributes:
        name: the test id.
        point: ``p0``, the flat vector all derivatives are taken at.
        flat: ``impl -> f`` with ``f(p) -> y`` flat; ``impl`` is ``AUTO``, ``"scan"`` or a FastConfig.
        impl: the implementation under test (compared with ``reference_impl``).
        reference_impl: what the expected values are computed with.
    """

    name: str
    point: jax.Array
    flat: Callable[[Any], Flat]
    impl: Any = AUTO
    reference_impl: Any = "scan"

    @functools.cached_property
    def f(self) -> Flat:
        return self.flat(self.impl)

    @functools.cached_property
    def size_out(self) -> int:
        return int(jax.eval_shape(self.f, self.point).shape[0])


def _case(name: str, tree: Any, run: Callable[[Any, Any], Any], **options: Any) -> Case:
    """A Case from a pytree of differentiable inputs and ``run(impl, tree) -> pytree of outputs``."""
    point, unravel = ravel_pytree(tree)

    def flat(impl: Any) -> Flat:
        def f(p: jax.Array) -> jax.Array:
            return ravel_pytree(run(impl, unravel(p)))[0]

        return f

    return Case(name, point, flat, **options)


def _lstm_case(name: str, impl: Any = AUTO, **kwargs: Any) -> Case:
    def run(impl: Any, tree: Any) -> Any:
        params, xs, state = tree
        return jaxlstm.lstm(params, xs, state, **kwargs, **impl_kwargs(impl))

    return _case(name, (_params(0), _xs(), _state(10)), run, impl=impl)


def _bidirectional_case() -> Case:
    def run(impl: Any, tree: Any) -> Any:
        params, xs, state = tree
        return jaxlstm.bidirectional(params, xs, state, mask=MASK, **impl_kwargs(impl))

    return _case("bidirectional", (_bi_params(0), _xs(), _bi_state(10)), run)


def _stacked_case() -> Case:
    # A one-direction layer under a bidirectional one: both of stacked_lstm's layer kinds.
    def run(impl: Any, tree: Any) -> Any:
        params, xs, state = tree
        return jaxlstm.stacked_lstm(params, xs, state, lengths=LENGTHS, **impl_kwargs(impl))

    tree = ((_params(0), _bi_params(2, H)), _xs(), (_state(10), _bi_state(20)))
    return _case("stacked_lstm", tree, run)


def _stream_tree() -> Any:
    return (_params(0), _params(2, H)), _xs(), (_state(10), _state(20))


def _layer_by_layer(params: tuple, xs: jax.Array, states: tuple, mask: Optional[np.ndarray]) -> Any:
    """The reference for the streaming functions: each layer's whole sequence through the scan."""
    finals = []
    for layer, state in zip(params, states):
        out = jaxlstm.lstm(layer, xs, state, mask=mask, impl="scan")
        finals.append(out.state)
        xs = out.sequence
    return tuple(finals), xs


def _stream_chunk_case() -> Case:
    def run(impl: Any, tree: Any) -> Any:
        params, xs, state = tree
        if impl == "scan":
            return _layer_by_layer(params, xs, state, MASK)
        return jaxlstm.stream_chunk(params, state, xs, mask=MASK, **impl_kwargs(impl))

    return _case("stream_chunk", _stream_tree(), run)


def _stream_step_case() -> Case:
    # stream_step has no impl (its default, a loop of steps, runs the native one-step kernel on CPU).
    def run(impl: Any, tree: Any) -> Any:
        params, xs, state = tree
        if impl == "scan":
            return _layer_by_layer(params, xs, state, None)
        ys = []
        for t in range(T):
            state, y = jaxlstm.stream_step(params, state, xs[:, t])
            ys.append(y)
        return state, jnp.stack(ys, axis=1)

    return _case("stream_step", _stream_tree(), run)


# -- linen ----------------------------------------------------------------------------------------


def _linen_case(
    name: str, make: Callable[..., Any], call: dict[str, Any], state: Any, impl: Any = AUTO
) -> Case:
    """A linen module ``make(**impl_kwargs)``, differentiated w.r.t. its params, inputs and state."""
    module = make()
    variables = module.init(jax.random.key(0), _xs(), state, **call)

    def run(impl: Any, tree: Any) -> Any:
        params, xs, state = tree
        return make(**impl_kwargs(impl)).apply({"params": params}, xs, state, **call)

    return _case(name, (variables["params"], _xs(), state), run, impl=impl)


def _linen_lstm_case(name: str = "linen.LSTM", impl: Any = AUTO) -> Case:
    import jaxlstm.linen as jl

    def make(**kw: Any) -> Any:
        return jl.LSTM(
            H, return_sequences=True, return_state=True, go_backwards=True, param_dtype=jnp.float64, **kw
        )

    return _linen_case(name, make, {"mask": MASK, "lengths": LENGTHS}, _state(10), impl)


def _linen_stacked_case() -> Case:
    import jaxlstm.linen as jl

    def make(**kw: Any) -> Any:
        return jl.StackedLSTM(units=H, num_layers=2, param_dtype=jnp.float64, **kw)

    return _linen_case("linen.StackedLSTM", make, {"lengths": LENGTHS}, (_state(10), _state(20)))


def _linen_bidirectional_case() -> Case:
    import jaxlstm.linen as jl

    def make(**kw: Any) -> Any:
        return jl.Bidirectional(units=H, param_dtype=jnp.float64, **kw)

    return _linen_case("linen.Bidirectional", make, {"mask": MASK}, _bi_state(10))


def _linen_rnn_case() -> Case:
    import flax.linen as nn

    import jaxlstm.linen as jl

    rnn = nn.RNN(jl.LSTMCell(H, param_dtype=jnp.float64), reverse=True, keep_order=True, return_carry=True)
    variables = rnn.init(jax.random.key(0), _xs())

    def run(impl: Any, tree: Any) -> Any:
        params, xs, state = tree
        if impl == "scan":  # the cell has no impl: the reference is the functional scan
            out = jaxlstm.lstm(
                jl.get_params(params["cell"]), xs, state, reverse=True, keep_order=True, impl="scan"
            )
            return out.sequence, out.state.h, out.state.c
        (c, h), ys = rnn.apply({"params": params}, xs, initial_carry=state.to_flax_carry())
        return ys, h, c

    return _case("linen.RNN(LSTMCell)", (variables["params"], _xs(), _state(10)), run)


# -- nnx ------------------------------------------------------------------------------------------


def _nnx_case(
    name: str, make: Callable[..., Any], call: dict[str, Any], state: Any, impl: Any = AUTO
) -> Case:
    """An NNX module ``make(**impl_kwargs)``, differentiated w.r.t. its ``nnx.Param``s, inputs, state."""
    from flax import nnx

    _, params, _ = nnx.split(make(), nnx.Param, ...)

    @functools.cache
    def split(impl: Any) -> tuple[Any, Any]:
        graphdef, _, rest = nnx.split(make(**impl_kwargs(impl)), nnx.Param, ...)
        return graphdef, rest

    def run(impl: Any, tree: Any) -> Any:
        params, xs, state = tree
        graphdef, rest = split(impl)
        return nnx.merge(graphdef, params, rest)(xs, state, **call)

    return _case(name, (params, _xs(), state), run, impl=impl)


def _nnx_lstm_case(name: str = "nnx.LSTM", impl: Any = AUTO) -> Case:
    from flax import nnx

    import jaxlstm.nnx as jn

    def make(**kw: Any) -> Any:
        return jn.LSTM(
            I, H, return_sequences=True, return_state=True, go_backwards=True,
            param_dtype=jnp.float64, rngs=nnx.Rngs(0), **kw,
        )  # fmt: skip

    return _nnx_case(name, make, {"mask": MASK, "lengths": LENGTHS}, _state(10), impl)


def _nnx_stacked_case() -> Case:
    from flax import nnx

    import jaxlstm.nnx as jn

    def make(**kw: Any) -> Any:
        return jn.StackedLSTM(I, H, 2, param_dtype=jnp.float64, rngs=nnx.Rngs(0), **kw)

    return _nnx_case("nnx.StackedLSTM", make, {"lengths": LENGTHS}, (_state(10), _state(20)))


def _nnx_bidirectional_case() -> Case:
    from flax import nnx

    import jaxlstm.nnx as jn

    def make(**kw: Any) -> Any:
        return jn.Bidirectional(I, H, param_dtype=jnp.float64, rngs=nnx.Rngs(0), **kw)

    return _nnx_case("nnx.Bidirectional", make, {"mask": MASK}, _bi_state(10))


def _nnx_rnn_case() -> Case:
    from flax import nnx

    import jaxlstm.nnx as jn

    cell = jn.LSTMCell(I, H, param_dtype=jnp.float64, rngs=nnx.Rngs(0))
    graphdef, params, rest = nnx.split(
        nnx.RNN(cell, reverse=True, keep_order=True, return_carry=True, rngs=False), nnx.Param, ...
    )

    def run(impl: Any, tree: Any) -> Any:
        params, xs, state = tree
        rnn = nnx.merge(graphdef, params, rest)
        if impl == "scan":  # the cell has no impl: the reference is the functional scan
            out = jaxlstm.lstm(rnn.cell.params, xs, state, reverse=True, keep_order=True, impl="scan")
            return out.sequence, out.state.h, out.state.c
        (c, h), ys = rnn(xs, initial_carry=state.to_flax_carry())
        return ys, h, c

    return _case("nnx.RNN(LSTMCell)", (params, _xs(), _state(10)), run)


# -- the LSTM variants (issue 15): each runs on the reference scan, so the cases check that every
# transformation of the variant's step composes (their reference is the scan too, differentiated
# op by op in forward mode).


def _variant_params(seed: int, **variant: bool) -> jaxlstm.LSTMParams:
    """``init`` with the variant's weights, every leaf moved off its initial value (LN gains 1)."""
    flat, unravel = ravel_pytree(_f64(jaxlstm.init(jax.random.key(seed), I, H, **variant)))
    return unravel(flat + 0.2 * _normal(seed + 50, flat.shape))


RESETS = np.array([[False, True, False], [True, False, True]])


def _variant_case(
    name: str, params: jaxlstm.LSTMParams, with_reset_state: bool = False, **kwargs: Any
) -> Case:
    """``lstm`` of a variant, differentiated w.r.t. params, xs, initial state (and reset_state)."""

    def run(impl: Any, tree: Any) -> Any:
        params, xs, state, *reset_state = tree
        extra = dict(resets=RESETS, reset_state=reset_state[0]) if reset_state else {}
        return jaxlstm.lstm(params, xs, state, **kwargs, **extra, **impl_kwargs(impl))

    tree = (params, _xs(), _state(10), *((_state(30),) if with_reset_state else ()))
    return _case(name, tree, run)


def _dropout_masks_case() -> Case:
    keep = lambda seed, shape: (jax.random.uniform(jax.random.key(seed), shape) < 0.7) / 0.7  # noqa: E731
    masks = dict(
        dropout_masks="per_gate",
        recurrent_dropout_mask=_f64(keep(1, (B, 4, H))),
        input_dropout_mask=_f64(keep(2, (B, 4, I))),
        weight_drop_mask=_f64(keep(3, (H, 4 * H))),
    )
    return _variant_case("lstm_dropout_masks", _params(0), mask=MASK, **masks)


VARIANT_FACTORIES: dict[str, Callable[[], Case]] = {
    "lstm_layer_norm": lambda: _variant_case(
        "lstm_layer_norm",
        _variant_params(0, layer_norm=True),
        mask=MASK,
        reverse=True,
        layer_norm_carry="normalised",
    ),  # fmt: skip
    "lstm_peepholes_cifg": lambda: _variant_case(
        "lstm_peepholes_cifg", _variant_params(1, peepholes=True, coupled_gates=True), lengths=LENGTHS
    ),
    "lstm_zoneout": lambda: _variant_case(
        "lstm_zoneout",
        _params(0),
        zoneout=(0.3, 0.5),
        zoneout_key=jax.random.key(3),
        lengths=LENGTHS,
        reverse=True,
    ),  # fmt: skip
    "lstm_resets": lambda: _variant_case(
        "lstm_resets", _params(0), with_reset_state=True, mask=MASK, reverse=True
    ),
    "lstm_dropout_masks": _dropout_masks_case,
}
VARIANT_CASES = tuple(VARIANT_FACTORIES)


#: FastConfig(checkpoint_chunks=2) over T=3 steps: two rematerialised chunks, the second padded.
CHUNKS = FastConfig(checkpoint_chunks=2)

_FACTORIES: dict[str, Callable[[], Case]] = {
    "lstm": lambda: _lstm_case("lstm"),
    "lstm_mask_reverse": lambda: _lstm_case(
        "lstm_mask_reverse", mask=MASK, reverse=True, zero_output_for_mask=True
    ),
    "lstm_lengths_reverse": lambda: _lstm_case(
        "lstm_lengths_reverse", lengths=LENGTHS, reverse=True, keep_order=True
    ),
    "lstm_chunks": lambda: _lstm_case("lstm_chunks", impl=CHUNKS, mask=MASK, lengths=LENGTHS, reverse=True),
    "bidirectional": _bidirectional_case,
    "stacked_lstm": _stacked_case,
    "stream_chunk": _stream_chunk_case,
    "stream_step": _stream_step_case,
    "linen.LSTM": _linen_lstm_case,
    "linen.LSTM_chunks": lambda: _linen_lstm_case("linen.LSTM_chunks", impl=CHUNKS),
    "linen.StackedLSTM": _linen_stacked_case,
    "linen.Bidirectional": _linen_bidirectional_case,
    "linen.RNN(LSTMCell)": _linen_rnn_case,
    "nnx.LSTM": _nnx_lstm_case,
    "nnx.LSTM_chunks": lambda: _nnx_lstm_case("nnx.LSTM_chunks", impl=CHUNKS),
    "nnx.StackedLSTM": _nnx_stacked_case,
    "nnx.Bidirectional": _nnx_bidirectional_case,
    "nnx.RNN(LSTMCell)": _nnx_rnn_case,
    **VARIANT_FACTORIES,
}


@functools.cache
def case(name: str) -> Case:
    """The case called ``name``, built on first use (inside a test, so in float64)."""
    return _FACTORIES[name]()


# ----------------------------------------------------------------------------------------------
# Transformations and their expected values
# ----------------------------------------------------------------------------------------------


def tangent(n: int, scale: float = 1.0) -> jax.Array:
    return scale * 0.5 * jnp.cos(0.7 * jnp.arange(n, dtype=jnp.float64))


def cotangent(m: int) -> jax.Array:
    return jnp.sin(1.3 * jnp.arange(m, dtype=jnp.float64))


def _loss(f: Flat, w: jax.Array) -> Callable[[jax.Array], jax.Array]:
    return lambda p: jnp.vdot(w, f(p))


Transform = Callable[[Flat, jax.Array, jax.Array, jax.Array], Any]

#: name -> T(f, p, t, w); t a tangent of p, w a cotangent of f(p).
TRANSFORMS: dict[str, Transform] = {
    "jvp": lambda f, p, t, w: jax.jvp(f, (p,), (t,)),
    "linearize": lambda f, p, t, w: (lambda y, lin: (y, lin(t)))(*jax.linearize(f, p)),
    "jacfwd": lambda f, p, t, w: jax.jacfwd(f)(p),
    "jacrev": lambda f, p, t, w: jax.jacrev(f)(p),
    "vjp": lambda f, p, t, w: (lambda y, pull: (y, pull(w)[0]))(*jax.vjp(f, p)),
    "hessian": lambda f, p, t, w: jax.hessian(_loss(f, w))(p),
    "hvp": lambda f, p, t, w: jax.jvp(jax.grad(_loss(f, w)), (p,), (t,)),  # forward over reverse
    "grad_of_grad": lambda f, p, t, w: jax.grad(lambda q: jnp.vdot(jax.grad(_loss(f, w))(q), t))(p),
}

FORWARD = ("jvp", "linearize", "jacfwd")
REVERSE = ("vjp", "jacrev")
HIGHER = ("hessian", "hvp", "grad_of_grad")
ALL = FORWARD + REVERSE + HIGHER


def _expected(c: Case, name: str, p: jax.Array, t: jax.Array, w: jax.Array) -> Any:
    key = tuple(np.asarray(p).tolist())
    y, jac = _jacobian(c.name, key)
    return {
        "jvp": lambda: (y, jac @ t),
        "linearize": lambda: (y, jac @ t),
        "jacfwd": lambda: jac,
        "jacrev": lambda: jac,
        "vjp": lambda: (y, jac.T @ w),
        "hessian": lambda: _hessian(c.name, key),
        "hvp": lambda: (jac.T @ w, _hessian_times(c.name, key, tuple(np.asarray(t).tolist()))),
        "grad_of_grad": lambda: _hessian_times(c.name, key, tuple(np.asarray(t).tolist())),
    }[name]()


@functools.cache
def _jacobian(name: str, p: tuple[float, ...]) -> tuple[jax.Array, jax.Array]:
    """The reference ``(y, J)`` at the point ``p`` (a tuple, to be a cache key)."""
    c = case(name)
    f = c.flat(c.reference_impl)
    # Eagerly, op by op: each op compiles once per shape and serves every case after it, where a
    # jitted reference would compile a new program per case (and per xdist worker).
    with jax.disable_jit():
        return f(jnp.asarray(p)), jax.jacfwd(f)(jnp.asarray(p))


def _reference_loss(name: str) -> Callable[[jax.Array], jax.Array]:
    c = case(name)
    return _loss(c.flat(c.reference_impl), cotangent(c.size_out))


@functools.cache
def _hessian(name: str, p: tuple[float, ...]) -> jax.Array:
    """The reference Hessian of ``<w, y>`` at ``p``, forward over forward (JAX's own autodiff of the
    pure-JAX scan, in a different order from jax.hessian's forward over reverse)."""
    with jax.disable_jit():
        return jax.jacfwd(jax.jacfwd(_reference_loss(name)))(jnp.asarray(p))


@functools.cache
def _hessian_times(name: str, p: tuple[float, ...], t: tuple[float, ...]) -> jax.Array:
    """The reference ``Hs t`` at ``p``: one forward-over-reverse product, a fraction of the whole
    Hessian's ops (what the hvp and grad_of_grad cells need)."""
    with jax.disable_jit():
        return jax.jvp(jax.grad(_reference_loss(name)), (jnp.asarray(p),), (jnp.asarray(t),))[1]


def points(c: Case) -> jax.Array:
    """Two points ``[2, n]`` for vmap: p0 and a perturbed copy."""
    p1 = c.point + 0.1 * jnp.sin(jnp.arange(c.point.size, dtype=c.point.dtype))
    return jnp.stack([c.point, p1])


# ----------------------------------------------------------------------------------------------
# Wrappings: where jit / checkpoint / control flow sit relative to the entry point's call
# ----------------------------------------------------------------------------------------------


def _scan_around(f: Flat, m: int) -> Flat:
    # The call's inputs are the scan's carry, so both the carry and the body are differentiated.
    def g(p: jax.Array) -> jax.Array:
        return lax.scan(lambda q, _: (q, f(q)), p, None, length=2)[1][1]

    return g


def _cond_around(f: Flat, m: int) -> Flat:
    # A predicate computed from p, so that the cond stays a cond (not resolved while tracing).
    def g(p: jax.Array) -> jax.Array:
        return lax.cond(p[0] < jnp.inf, f, lambda q: jnp.zeros(m, q.dtype) + 0.0 * q[0], p)

    return g


def _while_around(f: Flat, m: int) -> Flat:
    def g(p: jax.Array) -> jax.Array:
        body = lambda s: (s[0] + 1, f(p))  # noqa: E731
        return lax.while_loop(lambda s: s[0] < 1, body, (0, jnp.zeros(m, p.dtype)))[1]

    return g


Wrap = Callable[[Flat, int], Flat]

#: name -> wrap(f, size_out). "jit_outside" wraps the whole transformed computation (see compute).
WRAPPINGS: dict[str, Wrap] = {
    "none": lambda f, m: f,
    "jit_outside": lambda f, m: f,
    "jit_inside": lambda f, m: jax.jit(f),
    "checkpoint": lambda f, m: jax.checkpoint(f),
    "checkpoint_dots": lambda f, m: jax.checkpoint(f, policy=jax.checkpoint_policies.dots_saveable),
    "checkpoint_nothing": lambda f, m: jax.checkpoint(f, policy=jax.checkpoint_policies.nothing_saveable),
    "scan": _scan_around,
    "cond": _cond_around,
    "while": _while_around,
}


def compute(c: Case, transform: str, wrapping: str, f: Optional[Flat] = None, batched: bool = False) -> Any:
    """``transform`` of the case's function (or ``f``) under ``wrapping``, at p0 (or vmapped over
    ``points``, with a tangent per point)."""
    f = c.f if f is None else f
    g = WRAPPINGS[wrapping](f, c.size_out)
    w = cotangent(c.size_out)

    def run(p: jax.Array, t: jax.Array) -> Any:
        return TRANSFORMS[transform](g, p, t, w)

    if batched:
        run = jax.vmap(run)
    if wrapping == "jit_outside":
        run = jax.jit(run)
    if batched:
        return run(points(c), jnp.stack([tangent(c.point.size), tangent(c.point.size, -2.0)]))
    return run(c.point, tangent(c.point.size))


def expected(c: Case, transform: str, batched: bool = False) -> Any:
    """The reference value of ``compute(c, transform, ..., batched)``."""
    w = cotangent(c.size_out)
    if not batched:
        return _expected(c, transform, c.point, tangent(c.point.size), w)
    at = [
        _expected(c, transform, p, t, w)
        for p, t in zip(points(c), (tangent(c.point.size), tangent(c.point.size, -2.0)))
    ]
    return jax.tree.map(lambda *a: jnp.stack(a), *at)


def assert_close(actual: Any, wanted: Any, tolerance: float = TOLERANCE) -> None:
    """Equal structure and values to ``tolerance`` (absolute and relative), leaf by leaf."""
    actual_leaves, actual_tree = jax.tree.flatten(actual)
    wanted_leaves, wanted_tree = jax.tree.flatten(wanted)
    assert actual_tree == wanted_tree, (actual_tree, wanted_tree)
    for a, b in zip(actual_leaves, wanted_leaves):
        assert a.dtype == jnp.float64, a.dtype  # a float32 leaf would make 1e-10 meaningless
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tolerance, atol=tolerance)


def check(name: str, transform: str, wrapping: str, batched: bool = False) -> None:
    """One cell of the matrix: the implementation under test equals the reference."""
    c = case(name)
    assert_close(compute(c, transform, wrapping, batched=batched), expected(c, transform, batched))


# ----------------------------------------------------------------------------------------------
# The selective product (each test file takes its part)
# ----------------------------------------------------------------------------------------------
#
# Each cell compiles at least one transformed program (~1-3 s of XLA on CPU), so the product is
# chosen, not full: every transformation with no wrapping, under jit_inside (what inspecting tracer
# types could not see) and under vmap for jaxlstm.lstm, the others where they differ in mechanism
# (checkpoint: partial evaluation; control flow: the call inside a loop or branch); a
# configuration's or entry point's forward (linearize), reverse (vjp) and second-order (hvp) cells.


@dataclass(frozen=True)
class Cell:
    name: str
    wrapping: str
    transform: str
    batched: bool = False

    @property
    def id(self) -> str:
        return "-".join((self.name, self.wrapping, ("vmap_" if self.batched else "") + self.transform))


def _cells(names: Any, wrappings: Any, transforms: Any, batched: bool = False) -> list[Cell]:
    one = lambda x: (x,) if isinstance(x, str) else tuple(x)  # noqa: E731
    return [Cell(n, w, t, batched) for n in one(names) for w in one(wrappings) for t in one(transforms)]


MODULES = (
    "linen.LSTM",
    "linen.StackedLSTM",
    "linen.Bidirectional",
    "nnx.LSTM",
    "nnx.StackedLSTM",
    "nnx.Bidirectional",
)
FUNCTIONS = ("bidirectional", "stacked_lstm", "stream_chunk")
#: Entry points without an impl argument that run one step at a time (stream_step on the native one-step
#: kernel on CPU, the Flax cells on the reference step).
STEP_CASES = ("stream_step", "linen.RNN(LSTMCell)", "nnx.RNN(LSTMCell)")
CONTROL_FLOW = ("scan", "cond", "while")

CELLS: list[Cell] = [
    # jaxlstm.lstm
    *_cells("lstm", "none", ("jvp", "linearize", "vjp", "hessian", "hvp", "grad_of_grad")),
    *_cells("lstm", "jit_inside", ALL),
    *_cells(
        "lstm", "jit_inside", ("jvp", "linearize", "vjp", "hessian", "hvp", "grad_of_grad"), batched=True
    ),
    *_cells("lstm", "jit_outside", ("jvp", "hvp")),
    *_cells("lstm", "checkpoint", ("linearize", "vjp", "grad_of_grad")),
    *_cells("lstm", "checkpoint_dots", ("linearize", "hvp")),
    *_cells("lstm", "checkpoint_nothing", "vjp"),
    *_cells("lstm", "scan", ("linearize", "vjp", "hvp")),
    *_cells("lstm", "cond", ("linearize", "vjp", "hvp")),
    *_cells("lstm", "while", FORWARD),  # forward mode only: see test_transform_control_flow
    # lstm configurations: mask, lengths, reverse; FastConfig(checkpoint_chunks) on batch-major inputs
    *_cells("lstm_mask_reverse", "none", ("linearize", "vjp", "hvp")),
    *_cells("lstm_lengths_reverse", "jit_inside", ("linearize", "vjp", "hvp")),
    *_cells("lstm_chunks", "jit_inside", ("jvp", "linearize", "vjp", "hvp", "grad_of_grad")),
    *_cells("lstm_chunks", "none", ("linearize", "vjp"), batched=True),
    *_cells("lstm_chunks", "scan", "linearize"),
    # the other entry points (second order where the entry point composes several lstm calls)
    *_cells(FUNCTIONS, "none", ("linearize", "vjp")),
    *_cells("stacked_lstm", "jit_inside", "jacfwd"),
    *_cells("stacked_lstm", "none", "hvp"),
    *_cells(MODULES, "none", "linearize"),
    *_cells("linen.LSTM", "none", "hvp"),
    *_cells("nnx.LSTM", "none", "vjp"),
    *_cells(("linen.LSTM_chunks", "nnx.LSTM_chunks"), "none", "linearize"),
    *_cells(STEP_CASES, "none", "linearize"),
    *_cells("nnx.LSTM", "cond", "linearize"),
    # the variants (their gradients are also checked against the oracle in test_variants.py, and
    # under shard_map in test_transform_shard_map.py): forward mode each, reverse mode under jit, vmap
    # and checkpoint, second order for layer norm (the step least like the plain one's)
    *_cells(VARIANT_CASES, "jit_inside", "linearize"),
    *_cells("lstm_layer_norm", "jit_inside", "vjp"),
    *_cells("lstm_layer_norm", "jit_inside", "hvp"),
    *_cells("lstm_resets", "none", "vjp", batched=True),
    *_cells("lstm_zoneout", "checkpoint", "vjp"),
]


def matrix(
    transforms: tuple[str, ...] = ALL, *, batched: bool = False, control_flow: bool = False
) -> list[Any]:
    """pytest params ``(name, wrapping, transform)`` of the cells with these transformations, vmapped
    or not, inside control flow or not."""
    return [
        pytest.param(c.name, c.wrapping, c.transform, id=c.id)
        for c in CELLS
        if c.transform in transforms and c.batched == batched and (c.wrapping in CONTROL_FLOW) == control_flow
    ]
