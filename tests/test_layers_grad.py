"""Gradients through a stacked bidirectional, projected, residual model with lengths and dropout
match finite differences (``check_grads``, float64 inside ``jax.enable_x64`` only)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from _random_layers import random_bidirectional
from jax.test_util import check_grads

import jaxlstm


def test_check_grads_stacked_bidirectional() -> None:
    # The context keeps float64 out of every other test in the session.
    with jax.enable_x64(True):
        rng = np.random.default_rng(16)
        batch, steps, features, units, proj = 2, 4, 3, 3, 2
        params = (
            random_bidirectional(rng, features, units, proj_size=proj, dtype=np.float64),
            random_bidirectional(rng, 2 * proj, units, proj_size=proj, dtype=np.float64),
        )
        xs = rng.normal(size=(batch, steps, features))
        initial = tuple(
            jaxlstm.BidirectionalState(
                *(
                    jaxlstm.LSTMState(
                        h=0.5 * rng.normal(size=(batch, proj)), c=0.5 * rng.normal(size=(batch, units))
                    )
                    for _ in range(2)
                )
            )
            for _ in params
        )
        lengths = np.array([4, 2])
        weights = rng.normal(size=(batch, steps, 2 * proj))
        key = jax.random.PRNGKey(2)

        @jax.jit  # one compilation shared by the primal and the finite differences
        def loss(params, xs, initial):
            out = jaxlstm.stacked_lstm(
                params,
                xs,
                initial,
                lengths=lengths,
                residual=True,
                dropout=0.25,
                deterministic=False,
                key=key,
            )
            states = sum(jnp.sum(leaf**2) for leaf in jax.tree_util.tree_leaves(out.state))
            return jnp.sum(weights * out.sequence) + states

        assert loss(params, xs, initial).dtype == jnp.float64
        check_grads(loss, (params, xs, initial), order=1, modes=("rev",), eps=1e-6, atol=1e-6, rtol=1e-6)
