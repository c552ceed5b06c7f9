"""``python -m jaxlstm`` runs as a newcomer runs it and shows the seed notebook's shapes."""

from __future__ import annotations

import subprocess
import sys


def test_demo_prints_seed_shapes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "jaxlstm"], capture_output=True, text=True, timeout=120, check=True
    )
    out = result.stdout
    assert "out.sequence[:, -1]  shape [16, 2]" in out
    assert "out.sequence  shape [16, 8, 2]" in out
    assert "out.state.h   shape [16, 2]" in out
    assert "out.state.c   shape [16, 2]" in out
    assert "The last step of the sequence equals h: True" in out
    assert "d loss / d initial_state.c     shape [16, 2]" in out
    assert "d loss / d params.recurrent_kernel shape [2, 8]" in out
