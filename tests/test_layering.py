"""The package's layers, read from its own import statements: each folder imports only the ones below it.

``jaxlstm/core/`` (the math, which imports jax, numpy and the standard library only) <-
``jaxlstm/layers/`` (bidirectional, stacks, streaming) <- everything at the top: the Flax modules,
``interop/``, the training utilities and the public paths. An import of a higher layer, or two
modules that import each other, fails here with the file and the line (lazy imports inside
functions included).
"""

from __future__ import annotations

import ast
import pathlib
import sys

import jaxlstm

PACKAGE = pathlib.Path(jaxlstm.__file__).parent
LAYERS = {"core": 0, "layers": 1}  # any other module of the package is on the top layer, 2
CORE_MAY_IMPORT = {"jax", "jaxlib", "numpy", *sys.stdlib_module_names}


def _module(path: pathlib.Path) -> list[str]:
    parts = ["jaxlstm", *path.relative_to(PACKAGE).with_suffix("").parts]
    return parts[:-1] if parts[-1] == "__init__" else parts


def _rank(module: list[str]) -> int:
    return LAYERS.get(module[1], 2) if len(module) > 1 else 2


def _imports(path: pathlib.Path) -> list[tuple[int, list[str]]]:
    """(line, the imported module's dotted parts) for every import in the file."""
    package = _module(path)[: None if path.name == "__init__.py" else -1]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name.split(".")) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = base + (node.module.split(".") if node.module else [])
            # `from . import stack` names a module: rank it, not its package
            out += [(node.lineno, target + [alias.name]) for alias in node.names]
    return out


def test_no_module_imports_a_higher_layer() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module(path)
        for line, target in _imports(path):
            if target[0] == "jaxlstm" and _rank(target) > _rank(module):
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {'.'.join(target)}")
    assert not wrong, "a lower layer imports a higher one:\n" + "\n".join(wrong)


def test_the_core_imports_only_jax_numpy_and_the_standard_library() -> None:
    wrong = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {'.'.join(target)}"
        for path in sorted((PACKAGE / "core").rglob("*.py"))
        for line, target in _imports(path)
        if target[0] not in CORE_MAY_IMPORT | {"jaxlstm"}
    ]
    assert not wrong, "the core imports a peer:\n" + "\n".join(wrong)


def _resolve(target: list[str]) -> str:
    """The package module an imported name lives in (`jaxlstm.core.pytrees.LSTMParams` -> its module)."""
    while len(target) > 1:
        where = PACKAGE.joinpath(*target[1:])
        if where.with_suffix(".py").exists() or (where / "__init__.py").exists():
            break
        target = target[:-1]
    return ".".join(target)


def test_no_modules_import_each_other() -> None:
    graph: dict[str, dict[str, int]] = {}  # module -> the package modules it imports -> a line
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(_module(path))
        edges = graph.setdefault(module, {})
        for line, target in _imports(path):
            if target[0] == "jaxlstm" and _resolve(target) != module:
                edges.setdefault(_resolve(target), line)

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            module = todo.pop()
            if module == goal:
                return True
            if module not in seen:
                seen.add(module)
                todo.extend(graph.get(module, {}))
        return False

    circles = [
        f"{m} -> {n} (line {line}) -> ... -> {m}"
        for m, edges in graph.items()
        for n, line in edges.items()
        if reaches(n, m)
    ]
    assert not circles, "modules that import each other:\n" + "\n".join(circles)
