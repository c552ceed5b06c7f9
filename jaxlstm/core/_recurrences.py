"""The two linear recurrences of the fast path's derivatives, as a pair of JAX primitives.

Differentiating the LSTM over a sequence leaves one recurrence that cannot be hoisted out of the time
loop, and it is linear. Forward mode runs it forwards in time, reverse mode runs its transpose backwards:

    tangent:    (dz_in [T,B,4H], dh0, dc0) -> (dys [T,B,H], dh_T, dc_T)
                dz_t = dz_in_t + dh_{t-1} U;  (dh_t, dc_t) from dz_t and the gates of step t
    cotangent:  (ct_ys [T,B,H], ct_hT, ct_cT) -> (ct_dz_in [T,B,4H], ct_h0, ct_c0)   its transpose

Both are linear in their last three operands and depend non-linearly on the residuals of the forward
pass (``U``, the pre-activations ``zs`` and the state ``c_prev`` each step starts from; ``keep`` and
``valid`` as in ``fast``). Each primitive carries the JAX rules that make every transformation compose:

* transpose: the other primitive, so ``grad`` runs the hand-written backward recurrence (one GEMM per
  step, ``dz_t U^T``) instead of JAX's transpose of a scan;
* JVP: linear in the last three operands (the primitive again, which is what keeps the linearised
  program transposable into the fast backward); the derivative with respect to the residuals, needed
  only for second and higher order, is the JVP of the pure-JAX reference below;
* batching: a vmapped axis is folded into the batch axis B (vmap of the reference if ``U`` is batched);
* lowering: the pure-JAX reference scan, on every platform; with ``native=True`` the cotangent lowers
  to the native CPU kernel (``jaxlstm.native``) instead: another lowering of the same primitive, never
  another API.

Imports jax only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Optional

import jax
import jax.numpy as jnp
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from ._manual_axes import vary_like

__all__ = ["gates", "tangent", "cotangent", "tangent_scan", "cotangent_scan", "project"]

Array = jax.Array


def gates(z: Array) -> tuple[Array, Array, Array, Array]:
    """The activated gates ``i, f, g, o`` of pre-activations ``z [..., 4H]`` (sigmoid, tanh)."""
    z_i, z_f, z_c, z_o = jnp.split(z, 4, axis=-1)
    return jax.nn.sigmoid(z_i), jax.nn.sigmoid(z_f), jnp.tanh(z_c), jax.nn.sigmoid(z_o)


# ----------------------------------------------------------------------------------------------
# Pure-JAX references (the lowering, and the oracle for any other lowering)
# ----------------------------------------------------------------------------------------------


def tangent_scan(
    recurrent_kernel: Array,
    zs: Array,
    c_prev: Array,
    keep: Optional[Array],
    valid: Optional[Array],
    dz_in: Array,
    dh0: Array,
    dc0: Array,
    *,
    zero_output: bool,
    unroll: int | bool,
) -> tuple[Array, Array, Array]:
    """Forward-mode recurrence: tangents of the outputs and final state from ``dz_in`` and the
    initial state's tangents. ``dz_in [T,B,4H]`` is every part of ``dz_t`` but ``dh_{t-1} U``."""

    def body(carry, inputs):
        dh, dc = carry  # tangents of the state this step starts from
        z, cp, k_t, v_t, dzi = inputs
        i, f, g, o = gates(z)
        tc = jnp.tanh(f * cp + i * g)
        dz_i, dz_f, dz_g, dz_o = jnp.split(dzi + dh @ recurrent_kernel, 4, axis=-1)
        dc_new = f * dc + cp * f * (1.0 - f) * dz_f + g * i * (1.0 - i) * dz_i + i * (1.0 - g * g) * dz_g
        dh_new = tc * o * (1.0 - o) * dz_o + o * (1.0 - tc * tc) * dc_new
        dy, dh_next, dc_next = dh_new, dh_new, dc_new
        if k_t is not None:
            k = k_t[:, None]
            dh_next, dc_next = jnp.where(k, dh_new, dh), jnp.where(k, dc_new, dc)
            dy = jnp.where(k, dh_new, jnp.zeros_like(dh) if zero_output else dh)
        if v_t is not None:
            dy = jnp.where(v_t[:, None], dy, jnp.zeros_like(dy))
        return (dh_next, dc_next), dy

    (dh_T, dc_T), dys = jax.lax.scan(body, (dh0, dc0), (zs, c_prev, keep, valid, dz_in), unroll=unroll)
    return dys, dh_T, dc_T


def cotangent_scan(
    recurrent_kernel: Array,
    zs: Array,
    c_prev: Array,
    keep: Optional[Array],
    valid: Optional[Array],
    ct_ys: Array,
    ct_hT: Array,
    ct_cT: Array,
    *,
    zero_output: bool,
    unroll: int | bool,
) -> tuple[Array, Array, Array]:
    """Reverse-mode recurrence (the transpose of ``tangent_scan``): cotangents of ``dz_in`` (the
    pre-activation gradients ``dZ``) and of the initial state."""
    recurrent_t = recurrent_kernel.T

    def body(carry, inputs):
        dh, dc = carry  # cotangents of the state after this step
        dy, z, cp, k_t, v_t = inputs
        if v_t is not None:
            dy = jnp.where(v_t[:, None], dy, jnp.zeros_like(dy))
        skip: Optional[tuple[Array, Array]] = None  # cotangents that bypass masked steps
        if k_t is None:
            dh_new, dc_new = dh + dy, dc
        else:
            k = k_t[:, None]
            # A kept step's output is h_new; a masked one passes the state through (and emits the
            # previous h unless zero_output), so its cotangents go straight to the previous state.
            dh_new, dc_new = jnp.where(k, dh + dy, 0.0), jnp.where(k, dc, 0.0)
            skip = (jnp.where(k, 0.0, dh if zero_output else dh + dy), jnp.where(k, 0.0, dc))
        # A step that is not kept has dh_new = dc_new = 0, so dz = 0 whatever c_t holds there.
        i, f, g, o = gates(z)
        tc = jnp.tanh(f * cp + i * g)  # c_t, recomputed (cheaper than storing it)
        dc_tot = dc_new + dh_new * o * (1.0 - tc * tc)
        dz = jnp.concatenate(
            [
                dc_tot * g * i * (1.0 - i),
                dc_tot * cp * f * (1.0 - f),
                dc_tot * i * (1.0 - g * g),
                dh_new * tc * o * (1.0 - o),
            ],
            axis=-1,
        )
        dh_prev = dz @ recurrent_t
        dc_prev = dc_tot * f
        if skip is not None:
            dh_prev, dc_prev = dh_prev + skip[0], dc_prev + skip[1]
        return (dh_prev, dc_prev), dz

    (ct_h0, ct_c0), ct_dz = jax.lax.scan(
        body, (ct_hT, ct_cT), (ct_ys, zs, c_prev, keep, valid), reverse=True, unroll=unroll
    )
    return ct_dz, ct_h0, ct_c0


# ----------------------------------------------------------------------------------------------
# The primitives
# ----------------------------------------------------------------------------------------------
#
# Operands, flat: recurrent_kernel, zs, c_prev, [keep], [valid], seq, h, c; keep and valid are present
# when the static has_keep / has_valid say so. The last three are the linear ones: seq is time-major
# [T, B, ...], h and c are [B, H].


def _split(args: Sequence[Any], has_keep: bool, has_valid: bool) -> tuple:
    """(recurrent_kernel, zs, c_prev, keep, valid, seq, h, c) from the flat operands."""
    recurrent, zs, c_prev, *rest = args
    keep = rest.pop(0) if has_keep else None
    valid = rest.pop(0) if has_valid else None
    return (recurrent, zs, c_prev, keep, valid, *rest)


def _flat(recurrent, zs, c_prev, keep, valid, seq, h, c) -> list:
    return [a for a in (recurrent, zs, c_prev, keep, valid) if a is not None] + [seq, h, c]


def _time_major_flags(has_keep: bool, has_valid: bool) -> list[bool]:
    """Per operand: whether its batch axis is axis 1 (time-major) rather than axis 0 (None: ``U``)."""
    return [None, True, True] + [True] * (has_keep + has_valid) + [True, False, False]


class _Recurrence(Primitive):
    """A recurrence primitive; ``reference`` is the pure-JAX function it computes, on flat operands
    (used for the residuals' JVP and for vmap over per-example weights)."""

    reference: Callable[..., Any]


def _define(
    name: str, reference: Callable, seq_width: Callable[[int], int], native: Optional[Callable] = None
) -> _Recurrence:
    """A linear recurrence primitive computing ``reference`` (or ``native``, when asked for and given)."""
    prim = _Recurrence(name)
    prim.multiple_results = True

    def pure(*args, has_keep, has_valid, zero_output, unroll, native_kernel):
        del native_kernel
        return reference(*_split(args, has_keep, has_valid), zero_output=zero_output, unroll=unroll)

    def impl(*args, has_keep, has_valid, zero_output, unroll, native_kernel):
        if native_kernel and native is not None:
            return native(*_split(args, has_keep, has_valid), zero_output=zero_output)
        return pure(
            *args,
            has_keep=has_keep,
            has_valid=has_valid,
            zero_output=zero_output,
            unroll=unroll,
            native_kernel=False,
        )

    def abstract_eval(*avals, has_keep, has_valid, zero_output, unroll, native_kernel):
        del zero_output, unroll, native_kernel
        recurrent, _, _, _, _, seq, h, c = _split(avals, has_keep, has_valid)
        steps, batch = seq.shape[:2]
        units = recurrent.shape[0]
        # Shaped like the linear operands they pair with (which keeps shard_map's varying axes).
        return (
            seq.update(shape=(steps, batch, seq_width(units)), dtype=seq.dtype),
            h.update(shape=(batch, units), dtype=h.dtype),
            c.update(shape=(batch, units), dtype=c.dtype),
        )

    prim.def_impl(impl)
    prim.def_abstract_eval(abstract_eval)
    mlir.register_lowering(prim, mlir.lower_fun(impl, multiple_results=True))
    prim.reference = pure  # the pure-JAX function the primitive computes, flat operands
    return prim


def _native_cotangent(recurrent_kernel, zs, c_prev, keep, valid, ct_ys, ct_hT, ct_cT, *, zero_output):
    from . import native  # only when asked for: the extension is optional

    return native.backward_recurrence(
        recurrent_kernel, zs, c_prev, keep, valid, ct_ys, ct_hT, ct_cT, zero_output=zero_output
    )


_tangent_p = _define("jaxlstm_tangent_recurrence", tangent_scan, lambda units: units)
_cotangent_p = _define(
    "jaxlstm_cotangent_recurrence", cotangent_scan, lambda units: 4 * units, native=_native_cotangent
)


def _jvp(prim: _Recurrence, primals, tangents, **params):
    """Linear in the last three operands; the residuals' part (higher order only) from the reference."""
    outs = prim.bind(*primals, **params)
    *residuals, seq, h, c = primals
    *d_residuals, d_seq, d_h, d_c = tangents
    out_tangents = None
    if not all(type(t) is ad.Zero for t in (d_seq, d_h, d_c)):
        out_tangents = prim.bind(*residuals, *map(ad.instantiate_zeros, (d_seq, d_h, d_c)), **params)
    moving = [i for i, t in enumerate(d_residuals) if type(t) is not ad.Zero]
    if moving:

        def of_residuals(*moved):
            args = list(residuals)
            for i, a in zip(moving, moved):
                args[i] = a
            return prim.reference(*args, seq, h, c, **params)

        _, extra = jax.jvp(of_residuals, [residuals[i] for i in moving], [d_residuals[i] for i in moving])
        out_tangents = extra if out_tangents is None else [a + b for a, b in zip(out_tangents, extra)]
    if out_tangents is None:
        out_tangents = [ad.Zero(jax.typeof(o).to_tangent_aval()) for o in outs]
    return outs, out_tangents


def _transpose(other: Primitive, cts, *args, **params):
    *residuals, seq, h, c = args
    if any(ad.is_undefined_primal(r) for r in residuals):
        raise TypeError("jaxlstm: a recurrence is linear only in its last three operands")
    cts = [ad.instantiate_zeros(ct) for ct in cts]
    # The cotangents pair with (seq, h, c) of the other primitive: give them the residuals' varying
    # mesh axes under shard_map (a no-op elsewhere).
    cts = vary_like(cts, residuals)
    out = other.bind(*residuals, *cts, **params)
    return [None] * len(residuals) + [
        ct if ad.is_undefined_primal(x) else None for ct, x in zip(out, (seq, h, c))
    ]


def _batch(prim: _Recurrence, args, dims, *, has_keep, has_valid, **params):
    """Fold the vmapped axis into B: one larger batch through the same primitive."""
    params = dict(has_keep=has_keep, has_valid=has_valid, **params)
    if dims[0] is not None:  # per-example recurrent weights: no shared U to fold into
        out = jax.vmap(partial(prim.reference, **params), in_axes=tuple(dims))(*args)
        return out, (0, 0, 0)
    size = next(a.shape[d] for a, d in zip(args, dims) if d is not None)
    folded = []
    for a, d, time_major in zip(args, dims, _time_major_flags(has_keep, has_valid)):
        if time_major is None:
            folded.append(a)
            continue
        axis = 1 if time_major else 0  # where the batch axis B is
        if d is None:
            a = jnp.broadcast_to(jnp.expand_dims(a, axis), (*a.shape[:axis], size, *a.shape[axis:]))
        else:
            a = jnp.moveaxis(a, d, axis)
        folded.append(a.reshape(*a.shape[:axis], size * a.shape[axis + 1], *a.shape[axis + 2 :]))
    seq, h, c = prim.bind(*folded, **params)
    batch = h.shape[0] // size
    return (
        (
            seq.reshape(seq.shape[0], size, batch, *seq.shape[2:]),
            h.reshape(size, batch, -1),
            c.reshape(size, batch, -1),
        ),
        (1, 0, 0),
    )


ad.primitive_jvps[_tangent_p] = partial(_jvp, _tangent_p)
ad.primitive_jvps[_cotangent_p] = partial(_jvp, _cotangent_p)
ad.primitive_transposes[_tangent_p] = partial(_transpose, _cotangent_p)
ad.primitive_transposes[_cotangent_p] = partial(_transpose, _tangent_p)
batching.primitive_batchers[_tangent_p] = partial(_batch, _tangent_p)
batching.primitive_batchers[_cotangent_p] = partial(_batch, _cotangent_p)


def _bind(
    prim: Primitive,
    recurrent_kernel,
    zs,
    c_prev,
    keep,
    valid,
    seq,
    h,
    c,
    *,
    zero_output,
    unroll,
    native=False,
):
    operands = _flat(recurrent_kernel, zs, c_prev, keep, valid, seq, h, c)
    # One varying type for every per-batch operand under shard_map, so the outputs have it too.
    operands[1:] = vary_like(operands[1:], operands)
    return tuple(
        prim.bind(
            *operands,
            has_keep=keep is not None,
            has_valid=valid is not None,
            zero_output=bool(zero_output),
            unroll=unroll,
            native_kernel=bool(native),
        )
    )


tangent = partial(_bind, _tangent_p)
tangent.__doc__ = (
    "``tangent_scan`` as the primitive (same arguments; ``native=True`` makes its transpose run the "
    "native kernel): forward mode's recurrence."
)
cotangent = partial(_bind, _cotangent_p)
cotangent.__doc__ = "``cotangent_scan`` as the primitive (same arguments): reverse mode's recurrence."


# ----------------------------------------------------------------------------------------------
# The hoisted products, with transposes laid out for the weight gradients
# ----------------------------------------------------------------------------------------------
#
# ``project(a [T,B,K], b [K,N]) = a @ b`` over all T*B rows, bilinear. JAX's own transpose of a
# dot_general always puts the cotangent first: the weight gradient comes out as ``(dZ^T a)^T``, which
# on XLA:CPU materialises the wide dZ^T [4H, T*B] and runs a GEMM on transposed operands (measured
# slower than the hand-written VJP). This transpose computes ``a^T dZ`` (XLA transposes the narrow a)
# and ``dZ b^T``, the forms the hand-written VJP used.

_OVER_FEATURES = (((2,), (0,)), ((), ()))
_OVER_TIME_AND_BATCH = (((0, 1), (0, 1)), ((), ()))


def _project_impl(a, b):
    return jax.lax.dot_general(a, b, _OVER_FEATURES)


_project_p = Primitive("jaxlstm_project")
_project_p.def_impl(_project_impl)
_project_p.def_abstract_eval(
    lambda a, b: a.update(shape=(*a.shape[:2], b.shape[1]), dtype=jnp.result_type(a.dtype, b.dtype))
)
mlir.register_lowering(_project_p, mlir.lower_fun(_project_impl, multiple_results=False))


def _project_jvp(primals, tangents):
    a, b = primals
    da, db = tangents
    out = _project_p.bind(a, b)
    terms = [_project_p.bind(*vary_like((da, b), a, b)) for _ in [0] if type(da) is not ad.Zero]
    terms += [_project_p.bind(*vary_like((a, db), a, b)) for _ in [0] if type(db) is not ad.Zero]
    if not terms:
        return out, ad.Zero(jax.typeof(out).to_tangent_aval())
    return out, terms[0] if len(terms) == 1 else terms[0] + terms[1]


def _project_transpose(ct, a, b):
    if type(ct) is ad.Zero:
        return [None, None]
    if ad.is_undefined_primal(a) and ad.is_undefined_primal(b):
        raise TypeError("jaxlstm: project is bilinear, not linear in both operands at once")
    if ad.is_undefined_primal(b):
        return [None, jax.lax.dot_general(a, ct, _OVER_TIME_AND_BATCH).astype(b.aval.dtype)]
    return [jax.lax.dot_general(ct, b, (((2,), (1,)), ((), ()))).astype(a.aval.dtype), None]


def _project_batch(args, dims):
    return jax.vmap(_project_impl, in_axes=tuple(dims))(*args), 0


ad.primitive_jvps[_project_p] = _project_jvp
ad.primitive_transposes[_project_p] = _project_transpose
batching.primitive_batchers[_project_p] = _project_batch


def project(a: Array, b: Array) -> Array:
    """``a [T,B,K] @ b [K,N] -> [T,B,N]`` whose transposes are the hand-written VJP's GEMMs."""
    return _project_p.bind(*vary_like((a, b), a, b))
