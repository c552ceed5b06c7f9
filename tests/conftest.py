"""Shared test set-up.

Peers are optional for users: a test that needs one calls ``require("name")``, which skips when the
peer is missing. ``.ci/run`` sets ``JAXLSTM_STRICT=1``, and then any skip fails the run, so CI can never
pass by quietly skipping a parity test.
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from types import ModuleType

import pytest

# Keras must pick its backend before its first import anywhere in the session.
os.environ.setdefault("KERAS_BACKEND", "jax")

# Many tests compile the same computation (the same LSTM on the same shapes, built by different
# tests, workers or subprocesses); JAX's persistent compilation cache lets each compile once per run,
# which saved 5-25% of the CPU time of the files measured. Set here, before jax is imported, the
# environment reaches pytest-xdist's workers and the tests' subprocesses. A fresh folder per run,
# removed at the end; a cache the user configured is left alone.
_OWN_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ
if _OWN_CACHE:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="jaxlstm-tests-jit-")
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

STRICT = os.environ.get("JAXLSTM_STRICT", "") not in ("", "0")


def require(module: str) -> ModuleType:
    """Import an optional peer, or skip (which fails the run in strict mode)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pytest.skip(f"optional peer {module!r} is not installed: {exc}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The long tests first (a stable sort: otherwise in file order), so that the xdist workers spend
    # the end of the run on short tests and finish together instead of one waiting on the other's
    # last subprocess. Every worker collects and sorts alike, as xdist requires.
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not STRICT:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped:
        if reporter:
            reporter.write_line(
                f"JAXLSTM_STRICT: {skipped} test(s) skipped; strict mode counts a skip as a failure",
                red=True,
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config: pytest.Config) -> None:
    # The process that made the cache folder removes it (not an xdist worker: it inherited the folder).
    if _OWN_CACHE and not hasattr(config, "workerinput"):
        shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
