"""Every ``python`` code block of the documentation runs, so a docs example cannot rot.

One test per page (``docs/**/*.md`` and ``README.md``): its blocks run in order in one namespace, as a
reader would paste them. Blocks use small shapes and assert their own results against the real
peers (Keras, PyTorch, Flax, Equinox), so a page that drifts from the library fails here.
"""

from __future__ import annotations

import pathlib
import re

import pytest
from conftest import require

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]

# A fence at the start of a line: ```python ... ```. Indented fences (inside lists or admonitions)
# would be invisible to this test, so test_no_hidden_blocks refuses them.
_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)
_PEERS = {"keras": "keras", "torch": "torch", "equinox": "equinox", "flax": "flax", "haiku": "haiku"}


def _blocks(page: pathlib.Path) -> list[tuple[int, str]]:
    """(line, source) for each python block of the page."""
    text = page.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 2, m.group(1)) for m in _BLOCK.finditer(text)]


def test_pages_found() -> None:
    names = {p.name for p in PAGES}
    assert {"getting-started.md", "sequences.md", "transformations.md", "README.md"} <= names
    assert sum(len(_blocks(p)) for p in PAGES) >= 30


def test_no_hidden_blocks() -> None:
    for page in PAGES:
        indented = re.findall(r"^[ \t]+```python", page.read_text(encoding="utf-8"), re.M)
        assert not indented, f"{page.relative_to(ROOT)}: indented ```python fences are not executed"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_page_runs(page: pathlib.Path) -> None:
    blocks = _blocks(page)
    if not blocks:
        return
    source = "\n".join(src for _, src in blocks)
    for module, peer in _PEERS.items():
        if re.search(rf"^\s*(import|from) {module}\b", source, re.M):
            require(peer)
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem.replace('-', '_')}"}
    where = page.relative_to(ROOT)
    for line, src in blocks:
        exec(compile(src, f"{where}:{line}", "exec"), namespace)


_PUBLIC = [
    "jaxlstm",
    "jaxlstm.fast",
    "jaxlstm.cudnn",
    "jaxlstm.linen",
    "jaxlstm.nnx",
    "jaxlstm.checkpoint",
    "jaxlstm.sharding",
    "jaxlstm.plot",
    *(f"jaxlstm.interop.{m}" for m in ("keras", "keras_files", "torch", "flax", "equinox", "haiku", "io")),
]


def _reference_directives() -> dict[str, set[str] | None]:
    """Module -> the member names its ``::: module`` directive renders (None: all public ones)."""
    out: dict[str, set[str] | None] = {}
    for page in (ROOT / "docs" / "api").glob("*.md"):
        text = page.read_text(encoding="utf-8")
        for match in re.finditer(r"^::: ([\w.]+)\n((?:    .*\n)*)", text, re.M):
            members = re.search(r"members: \[(.*?)\]", match.group(2))
            out[match.group(1)] = (
                None if members is None else {m.strip() for m in members.group(1).split(",")}
            )
    return out


def test_api_reference_covers_every_public_name() -> None:
    """Every name in a public module's ``__all__`` has an entry in the generated API reference."""
    import importlib

    documented = _reference_directives()
    modules = {name: importlib.import_module(name) for name in documented}
    missing = []
    for public in _PUBLIC:
        module = importlib.import_module(public)
        for name in module.__all__:
            obj = getattr(module, name)
            if not any(
                getattr(mod, name, None) is obj and (members is None or name in members)
                for mod, members in ((modules[m], documented[m]) for m in documented)
            ):
                missing.append(f"{public}.{name}")
    assert not missing, f"not in docs/api/*.md: {missing}"
