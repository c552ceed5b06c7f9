"""Shared test set-up.

Peers are optional for users: a test that needs one calls ``require("name")``, which skips when the
peer is missing. ``.ci/run`` sets ``JAXLSTM_STRICT=1``, and then any skip fails the run, so CI can never
pass by quietly skipping a parity test.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

# Keras must pick its backend before its first import anywhere in the session.
os.environ.setdefault("KERAS_BACKEND", "jax")

STRICT = os.environ.get("JAXLSTM_STRICT", "") not in ("", "0")


def require(module: str) -> ModuleType:
    """Import an optional peer, or skip (which fails the run in strict mode)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pytest.skip(f"optional peer {module!r} is not installed: {exc}")


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
