"""``shard_map`` support: give a scan's initial carry the manual axes its inputs vary over.

Inside ``jax.shard_map`` every value is typed with the mesh axes it varies over. A scan whose carry
starts invariant (zeros, or a replicated initial state) but is updated from varying inputs (a batch
shard) changes type between iterations, which ``lax.scan`` refuses. Casting the initial carry to the
inputs' varying axes up front fixes that; outside ``shard_map`` nothing varies and this is a no-op.

Imports jax only.
"""

from __future__ import annotations

from typing import Any

import jax


def varying_axes(x: Any) -> frozenset:
    """The manual mesh axes ``x`` varies over (empty outside ``shard_map`` or for non-arrays)."""
    if x is None:
        return frozenset()
    aval = jax.typeof(x)
    manual = getattr(aval, "manual_axis_type", None)
    if manual is not None:
        return frozenset(manual.varying)
    return frozenset(getattr(aval, "vma", ()))  # older jax spelling


def vary_like(tree: Any, *refs: Any) -> Any:
    """``tree`` with every leaf cast to vary over all axes that any leaf of ``refs`` varies over."""
    axes = frozenset().union(*(varying_axes(r) for r in jax.tree_util.tree_leaves(refs)))
    if not axes:
        return tree

    def cast(leaf: jax.Array) -> jax.Array:
        missing = tuple(sorted(axes - varying_axes(leaf)))
        return jax.lax.pcast(leaf, missing, to="varying") if missing else leaf

    return jax.tree_util.tree_map(cast, tree)
