"""The examples train for real, at CI size: the adding problem at T=20 and the digits."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from _examples import ROOT, load_example
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


@pytest.mark.long
def test_adding_problem_t20_learns(adding, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    curve = tmp_path / "adding.png"
    result = adding.main(
        [
            "--seq-len",
            "20",
            "--steps",
            "600",
            "--eval-every",
            "50",
            "--target-mse",
            "0.05",
            "--seed",
            "0",
            "--no-progress",
            "--plot",
            str(curve),
        ]
    )
    assert result.reached and result.test_mse < 0.05, result
    assert result.steps <= 600
    assert result.history.evals[0]["test_mse"] > 0.1  # it started near the baseline
    out = capsys.readouterr().out
    assert "adding problem T=20: reached test MSE < 0.05" in out
    assert curve.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.long
def test_variants_example_trains_every_model_on_the_same_batches(tmp_path: Path) -> None:
    for peer in ("optax", "matplotlib"):
        require(peer)
    variants = load_example("variants")
    curve = tmp_path / "variants.png"
    argv = ["--seq-len", "10", "--steps", "10", "--eval-every", "5", "--units", "8", "--batch-size", "32"]
    curves = variants.main([*argv, "--only", "plain,layer norm + zoneout", "--plot", str(curve)])
    assert list(curves) == ["plain", "layer norm + zoneout"]
    for c in curves.values():
        assert c.steps == [5, 10]
        assert np.isfinite(c.test_mse).all()
    # Different cells from the same seed: the curves differ.
    assert curves["plain"].test_mse != curves["layer norm + zoneout"].test_mse
    assert curve.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.long
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


@pytest.mark.long
def test_cpu_devices_train_the_same(adding) -> None:
    """``--cpu-devices 2`` (a fresh process: the device count is fixed when jax starts) trains with the
    step split over two devices to the one-device result, up to float round-off."""
    args = ["--seq-len", "20", "--steps", "30", "--eval-every", "10", "--target-mse", "1e-9", "--seed", "0"]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "adding_problem.py"),
            *args,
            "--no-progress",
            "--cpu-devices",
            "2",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "(2 cpu device(s))" in done.stdout
    two = float(re.search(r"\(MSE ([0-9.]+),", done.stdout).group(1))
    one = adding.train(
        adding.Config(seq_len=20, max_steps=30, eval_every=10, target_mse=1e-9, seed=0), progress=False
    )
    assert one.steps == 30 and abs(two - one.test_mse) <= 2e-4, (two, one.test_mse)


def test_cpu_devices_after_jax_started_is_a_clear_error(adding, capsys: pytest.CaptureFixture[str]) -> None:
    jax.devices()  # this process's backend is up: the device count can no longer change
    with pytest.raises(SystemExit):
        adding.main(["--cpu-devices", "2"])
    assert (
        "argument --cpu-devices: jax_num_cpu_devices config should be updated before backends"
        in capsys.readouterr().err
    )
    with pytest.raises(SystemExit):
        adding.main(["--cpu-devices", "0"])
    assert "argument --cpu-devices: expected a positive integer, found 0" in capsys.readouterr().err
