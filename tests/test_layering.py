"""The package's layers, read from its own import statements: each folder imports only the ones below it.

``jaxlstm/core/`` (the math, which imports jax, numpy and the standard library only) <-
``jaxlstm/layers/`` (bidirectional, stacks, streaming) <- everything at the top: the Flax modules,
``interop/``, the training utilities and the public paths. An import of a higher layer, or two
modules that import each other, fails here with the file and the line (lazy imports inside
functions included); so does a private name used outside its module or package (``core._step`` from
``layers/``: the core gives the layers public names, ``core.run`` and ``core.run_step``).
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


def _is_module(parts: list[str]) -> bool:
    where = PACKAGE.joinpath(*parts[1:])
    return where.with_suffix(".py").exists() or (where / "__init__.py").exists()


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _may_use(user: list[str], owner: list[str]) -> bool:
    """Who may use a private name of ``owner``: a package's (``core._step``, ``layers._dropout``)
    serves the package and the folders below it, a plain module's only that module; inside a private
    package (``core._native``) the nearest public package above it counts."""
    public = next((i for i, part in enumerate(owner) if _private(part)), len(owner))
    if public == len(owner) and not (PACKAGE.joinpath(*owner[1:]) / "__init__.py").exists():
        return user == owner
    return user[:public] == owner[:public]


def test_no_module_uses_another_modules_private_names() -> None:
    """``from m import _x``, ``m._x`` on an imported module ``m`` (``core._step``), or importing a
    private module from outside its package: each a line naming the module, the name and the user."""
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        user = _module(path)
        package = user[: None if path.name == "__init__.py" else -1]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        bound: dict[str, list[str]] = {}  # a local name -> the package module it is bound to
        used: list[tuple[int, list[str], str]] = []  # (line, owner module, name)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    parts = alias.name.split(".")
                    for depth in range(2, len(parts) + 1):  # import jaxlstm.core._x names each part
                        used.append((node.lineno, parts[: depth - 1], parts[depth - 1]))
                    if alias.asname:
                        bound[alias.asname] = parts
                    else:
                        bound[parts[0]] = parts[:1]
            elif isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                target = base + (node.module.split(".") if node.module else [])
                for depth in range(2, len(target) + 1):
                    used.append((node.lineno, target[: depth - 1], target[depth - 1]))
                for alias in node.names:
                    used.append((node.lineno, target, alias.name))
                    if _is_module([*target, alias.name]):
                        bound[alias.asname or alias.name] = [*target, alias.name]

        def module_of(node: ast.expr) -> list[str] | None:
            if isinstance(node, ast.Name):
                return bound.get(node.id)
            if isinstance(node, ast.Attribute):
                owner = module_of(node.value)
                if owner is not None and _is_module([*owner, node.attr]):
                    return [*owner, node.attr]
            return None

        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                owner = module_of(node.value)
                if owner is not None:
                    used.append((node.lineno, owner, node.attr))
        wrong += [
            f"{path.relative_to(PACKAGE.parent)}:{line} uses {'.'.join(owner)}.{name}"
            for line, owner, name in used
            if owner[:1] == ["jaxlstm"] and _private(name) and not _may_use(user, owner)
        ]
    assert not wrong, "private names used outside their module:\n" + "\n".join(sorted(set(wrong)))
