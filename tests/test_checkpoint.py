"""Checkpoints: lossless round trips, clear errors, and a resumed run equal to an uninterrupted one."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _examples import ROOT, load_example
from conftest import require

import jaxlstm
from jaxlstm import checkpoint


def raw(leaf: jax.Array) -> np.ndarray:
    """The bits of a leaf, keys included, for exact comparison."""
    if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        leaf = jax.random.key_data(leaf)
    return np.asarray(leaf)


def assert_bitwise_equal(a: object, b: object) -> None:
    leaves_a, tree_a = jax.tree_util.tree_flatten(a)
    leaves_b, tree_b = jax.tree_util.tree_flatten(b)
    assert tree_a == tree_b
    for x, y in zip(leaves_a, leaves_b):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert raw(x).tobytes() == raw(y).tobytes()


def mixed_tree() -> dict:
    params = jaxlstm.init(jax.random.key(0), 3, 4, proj_size=2)
    optax = require("optax")
    return {
        "params": params,
        "opt_state": optax.adam(1e-3).init(params),
        "step": jnp.asarray(7, jnp.int32),
        "half": jax.random.normal(jax.random.key(1), (5,), jnp.bfloat16),
        "f16": jnp.asarray([1e-7, 65504.0], jnp.float16),  # subnormal and max: no rounding allowed
        "key": jax.random.key(3),
        "mask": jnp.asarray([True, False]),
        "none": None,
    }


def test_round_trip_is_bitwise_and_into_abstract_template(tmp_path: Path) -> None:
    tree = mixed_tree()
    path = tmp_path / "state.npz"
    checkpoint.save(path, tree)
    assert_bitwise_equal(checkpoint.restore(path, tree), tree)
    assert_bitwise_equal(checkpoint.restore(path, jax.eval_shape(lambda: tree)), tree)
    # The file is plain arrays: it loads with pickling disabled, and no temporary file is left.
    with np.load(path, allow_pickle=False) as data:
        assert all(data[name].dtype != object for name in data.files)
    assert os.listdir(tmp_path) == ["state.npz"]


def test_restore_errors(tmp_path: Path) -> None:
    tree = mixed_tree()
    path = tmp_path / "state.npz"
    checkpoint.save(path, tree)
    with pytest.raises(
        ValueError, match=r"structure differs .*only in like: none; only in the checkpoint: \['step'\]\)"
    ):
        checkpoint.restore(path, {k: v for k, v in tree.items() if k != "step"})
    with pytest.raises(
        ValueError, match=r"like\['half'\]: expected shape \[6\] \(from like\), the checkpoint has \[5\]"
    ):
        checkpoint.restore(path, {**tree, "half": jnp.zeros(6, jnp.bfloat16)})
    with pytest.raises(
        ValueError, match=r"like\['half'\]: expected dtype float32 \(from like\), the checkpoint has bfloat16"
    ):
        checkpoint.restore(path, {**tree, "half": jnp.zeros(5, jnp.float32)})
    with pytest.raises(ValueError, match=r"only in like: \['none'\]"):  # an array where None was saved
        checkpoint.restore(path, {**tree, "none": jnp.zeros(2)})
    with pytest.raises(
        ValueError,
        match=r"structure differs from the checkpoint.s \(checkpoint PyTreeDef\(\[\*\]\), like PyTreeDef\(\(\*,\)\)\)",
    ):  # list vs tuple
        checkpoint.save(path, [jnp.zeros(2)])
        checkpoint.restore(path, (jnp.zeros(2),))
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(ValueError, match="is not a jaxlstm checkpoint"):
        checkpoint.restore(other, tree)
    with pytest.raises(TypeError, match=r"tree\['n'\]: expected an array, .* found str"):
        checkpoint.save(tmp_path / "bad.npz", {"n": "1.5"})
    with pytest.raises(TypeError, match=r"tree\['n'\]: the Python int 18446744073709551616 does not fit"):
        checkpoint.save(tmp_path / "bad.npz", {"n": 2**64})


def test_python_scalars_round_trip_with_their_type(tmp_path: Path) -> None:
    """The README's (step, params, opt_state) with a Python int step; floats and bools too."""
    optax = require("optax")
    params = jaxlstm.init(jax.random.key(0), 3, 4)
    state = (7, params, optax.adam(1e-3).init(params), {"lr": 0.1 + 0.2, "done": True, "big": 2**62})
    path = tmp_path / "state.npz"
    checkpoint.save(path, state)
    small = lambda s: (s[0], s[1], s[2], {"lr": s[3]["lr"], "done": s[3]["done"]})  # noqa: E731
    for like in (state, (0, params, state[2], {"lr": 1.0, "done": False, "big": 0})):
        restored = checkpoint.restore(path, like)
        assert restored[3] == {"lr": 0.30000000000000004, "done": True, "big": 2**62}
        assert {k: type(v) for k, v in restored[3].items()} == {"lr": float, "done": bool, "big": int}
        assert restored[0] == 7 and type(restored[0]) is int
        assert_bitwise_equal(restored[1:3], state[1:3])
    # the eval_shape template (int32 / float32 weakly typed, as jax sees a Python scalar)
    checkpoint.save(path, small(state))
    restored = checkpoint.restore(path, jax.eval_shape(lambda: small(state)))
    assert restored[0] == 7 and type(restored[0]) is int and restored[3]["lr"] == 0.1 + 0.2
    # the file stores the documented dtypes
    with np.load(path) as f:
        assert [f[f"leaf_{i}"].dtype for i in (0,)] == [np.int64]
    # a different Python type, or a strongly typed array template, is a mismatch
    with pytest.raises(ValueError, match=r"like\[0\]: expected dtype a Python float .* has a Python int"):
        checkpoint.restore(path, small((7.0, *state[1:])))
    with pytest.raises(ValueError, match=r"like\[0\]: expected dtype int32 .* has a Python int"):
        checkpoint.restore(path, small((jnp.int32(7), *state[1:])))


RESUME_ARGS = dict(seq_len=10, units=8, batch_size=16, eval_every=10, learning_rate=1e-2)
RESUME_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def adding_cli(steps: int, checkpoint_path: Path) -> list[str]:
    """The example's command line for the run that ``Config(seed=3, target_mse=1e-12, **RESUME_ARGS)``
    describes, for ``steps`` steps, checkpointing to ``checkpoint_path``."""
    flags = {"steps": steps, "seed": 3, **RESUME_ARGS, "target_mse": 1e-12, "checkpoint": checkpoint_path}
    cli = [sys.executable, str(ROOT / "examples" / "adding_problem.py")]
    for name, value in flags.items():
        cli += ["--" + name.replace("_", "-"), str(value)]
    return cli + ["--no-progress"]


@pytest.mark.long
def test_resumed_run_equals_uninterrupted_run(tmp_path: Path) -> None:
    """Train 20 steps and save; a fresh process restores and trains 20 more; equals 40 straight."""
    require("optax")
    require("tqdm")
    adding = load_example("adding_problem")
    config = adding.Config(max_steps=20, target_mse=1e-12, seed=3, **RESUME_ARGS)
    resumed = tmp_path / "resumed.npz"
    adding.train(config, checkpoint=str(resumed), progress=False)
    shutil.copy(resumed, tmp_path / "step20.npz")

    cli = adding_cli(40, resumed)
    resuming = subprocess.Popen(
        cli, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=RESUME_ENV
    )
    try:
        # Meanwhile, here: 40 steps without a break.
        straight = tmp_path / "straight.npz"
        result = adding.train(
            dataclasses.replace(config, max_steps=40), checkpoint=str(straight), progress=False
        )
        assert result.steps == 40
        out, err = resuming.communicate(timeout=300)
    finally:
        if resuming.poll() is None:
            resuming.kill()
    assert resuming.returncode == 0, err[-3000:]
    assert "after 40 steps" in out

    like = jax.eval_shape(lambda: adding.init_state(config))
    state_resumed = checkpoint.restore(resumed, like)
    state_straight = checkpoint.restore(straight, like)
    assert int(state_resumed.step) == 40
    assert_bitwise_equal(state_resumed, state_straight)
    # And not trivially: the fresh process did take 20 more steps.
    state_20 = checkpoint.restore(tmp_path / "step20.npz", like)
    assert int(state_20.step) == 20
    assert not np.array_equal(state_resumed.params.lstm.kernel, state_20.params.lstm.kernel)


@pytest.mark.long
def test_run_killed_mid_training_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    """SIGKILL (no clean-up, no final save) once the first checkpoint exists; a new process resumes
    from whatever was last saved; the result is bit-identical to an uninterrupted run."""
    require("optax")
    require("tqdm")
    adding = load_example("adding_problem")
    killed = tmp_path / "killed.npz"

    victim = subprocess.Popen(
        adding_cli(1_000_000, killed),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=RESUME_ENV,
    )
    try:
        deadline = time.monotonic() + 240
        while not killed.exists():
            assert victim.poll() is None, victim.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.002)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=60)
    finally:
        if victim.poll() is None:
            victim.kill()
    assert victim.returncode == -signal.SIGKILL

    config = adding.Config(max_steps=40, target_mse=1e-12, seed=3, **RESUME_ARGS)
    like = jax.eval_shape(lambda: adding.init_state(config))
    killed_at = int(checkpoint.restore(killed, like).step)
    assert killed_at > 0 and killed_at % 10 == 0
    total = max(40, killed_at + 20)  # more steps after the kill, however far the victim got

    resumed = subprocess.run(
        adding_cli(total, killed), capture_output=True, text=True, env=RESUME_ENV, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"after {total} steps" in resumed.stdout
    straight = tmp_path / "straight.npz"
    adding.train(dataclasses.replace(config, max_steps=total), checkpoint=str(straight), progress=False)
    state = checkpoint.restore(killed, like)
    assert int(state.step) == total
    assert_bitwise_equal(state, checkpoint.restore(straight, like))
