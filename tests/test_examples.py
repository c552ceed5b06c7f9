"""The examples train for real, at CI size: the adding problem at T=20 and the digits."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest

from _examples import load_example
from conftest import require


@pytest.fixture(scope="module")
def adding():
    for peer in ("optax", "tqdm", "matplotlib"):
        require(peer)
    return load_example("adding_problem")


@pytest.fixture(scope="module")
def digits():
    for peer in ("optax", "tqdm", "matplotlib", "sklearn"):
        require(peer)
    return load_example("digits")


def test_adding_batches_follow_the_task(adding) -> None:
    xs, ys = adding.make_batch(jax.random.key(0), 256, 20)
    xs, ys = np.asarray(xs), np.asarray(ys)
    values, markers = xs[..., 0], xs[..., 1]
    assert xs.shape == (256, 20, 2) and ys.shape == (256,)
    assert values.min() >= 0 and values.max() <= 1
    assert np.all(markers.sum(axis=1) == 2)
    assert np.all(markers[:, :10].sum(axis=1) == 1)  # one marker in each half
    np.testing.assert_allclose(ys, (values * markers).sum(axis=1), rtol=1e-6)
    assert abs(ys.var() - adding.BASELINE_MSE) < 0.03  # predicting the mean scores ~1/6


def test_adding_problem_t20_learns(adding, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    curve = tmp_path / "adding.png"
    result = adding.main([
        "--seq-len", "20", "--steps", "600", "--eval-every", "50", "--target-mse", "0.05",
        "--seed", "0", "--no-progress", "--plot", str(curve),
    ])
    assert result.reached and result.test_mse < 0.05, result
    assert result.steps <= 600
    assert result.history.evals[0]["test_mse"] > 0.1  # it started near the baseline
    out = capsys.readouterr().out
    assert "adding problem T=20: reached test MSE < 0.05" in out
    assert curve.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_digits_learns(digits) -> None:
    config = digits.Config(max_steps=200, eval_every=50, target_accuracy=0.9, seed=0)
    result = digits.train(config, progress=False)
    assert result.test_accuracy >= 0.90, result.history.evals
    assert result.steps <= 200


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--steps", "0"], "argument --steps: expected a positive integer, found 0"),
        (["--batch-size", "x"], "argument --batch-size: expected a positive integer, found 'x'"),
        (["--learning-rate", "nan"], "argument --learning-rate: expected a positive number, found nan"),
        (["--seq-len", "1"], "argument --seq-len: expected at least 2 (one marker per half), found 1"),
        (["--seed", "-1"], "argument --seed: expected a non-negative integer, found -1"),
        (["--plot", "/no/such/folder/a.png"], "argument --plot: folder '/no/such/folder' does not exist"),
        (["--checkpoint", "run.pkl"], "argument --checkpoint: expected a file name ending in .npz"),
    ],
)
def test_adding_cli_errors(adding, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        adding.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_digits_cli_errors(digits, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        digits.main(["--target", "1.5"])
    assert "argument --target: expected an accuracy in (0, 1], found 1.5" in capsys.readouterr().err
