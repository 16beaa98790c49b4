"""The tree keeps the shape it was given: the product (`ftpstack/` without `offline/` and
`local/`) is what is deployed and imports neither of the tools; no two modules import each other,
directly or around a circle (whichever runs first would see the other half-made); units stay
readable (no module over 450 lines, no function over 60); no Python program hides in a string
(`python -c`), where ruff and mypy never see it."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "ftpstack"
TOOLS = ("ftpstack.offline", "ftpstack.local")
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60


def modules(*under: Path) -> list[Path]:
    return sorted(p for d in under for p in d.rglob("*.py"))


def product_modules() -> list[Path]:
    tools = [PACKAGE / "offline", PACKAGE / "local"]
    return [p for p in modules(PACKAGE) if not any(p.is_relative_to(t) for t in tools)]


def imported(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def tool_imports(path: Path) -> list[str]:
    names = imported(ast.parse(path.read_text()))
    return [n for n in names if n in TOOLS or n.startswith(tuple(f"{t}." for t in TOOLS))]


def test_the_product_imports_neither_the_offline_tools_nor_the_local_model() -> None:
    product = product_modules()
    assert PACKAGE / "component.py" in product and PACKAGE / "agent" / "apply.py" in product
    assert {p: tool_imports(p) for p in product if tool_imports(p)} == {}


def test_negative_control_an_import_of_a_tool_is_seen(tmp_path: Path) -> None:
    for line in ("from ftpstack.offline import plan", "import ftpstack.local.net.netns"):
        module = tmp_path / "m.py"
        module.write_text(f"{line}\n")
        assert tool_imports(module), line
    module.write_text("from ftpstack import outputs\n")
    assert tool_imports(module) == []


def too_long(path: Path) -> list[str]:
    source = path.read_text()
    name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    found = []
    if len(source.splitlines()) > MAX_MODULE_LINES:
        found.append(f"{name}: {len(source.splitlines())} lines")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found.append(f"{name}:{node.lineno} {node.name}: {length}")
    return found


def test_no_module_over_450_lines_and_no_function_over_60() -> None:
    assert [f for p in modules(PACKAGE) for f in too_long(p)] == []


def test_negative_control_a_long_function_and_a_long_module_are_seen(tmp_path: Path) -> None:
    module = tmp_path / "long.py"
    module.write_text("def f() -> None:\n" + "    pass\n" * MAX_FUNCTION_LINES)
    assert too_long(module) == [f"{module}:1 f: {MAX_FUNCTION_LINES + 1}"]
    module.write_text("x = 1\n" * (MAX_MODULE_LINES + 1))
    assert too_long(module) == [f"{module}: {MAX_MODULE_LINES + 1} lines"]


def python_c(path: Path) -> list[int]:
    """Lines where a sequence of arguments names a Python interpreter followed by `-c`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call | ast.List | ast.Tuple):
            continue
        items = node.args if isinstance(node, ast.Call) else node.elts
        words = [ast.unparse(i) for i in items]
        for i, word in enumerate(words):
            interpreter = "python" in word.lower() or word == "sys.executable"
            if interpreter and "'-c'" in words[i + 1 :]:
                found.append(node.lineno)
                break
    return found


@pytest.mark.parametrize("folder", ["ftpstack", "tests", "policy"])
def test_no_python_program_is_passed_as_c_source(folder: str) -> None:
    assert {
        str(p.relative_to(ROOT)): python_c(p) for p in modules(ROOT / folder) if python_c(p)
    } == {}


def test_negative_control_a_python_c_program_is_seen(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "import subprocess, sys\nsubprocess.run([sys.executable, '-c', 'print(1)'])\n"
    )
    assert python_c(module) == [2]
    module.write_text("argv = ('/usr/bin/python3', '-c', 'print(1)')\n")
    assert python_c(module) == [1]
    module.write_text("subprocess.run(['bash', '-c', 'echo'])\n")
    assert python_c(module) == []


# -- import circles --------------------------------------------------------------------------------
# An edge is an import that runs: at module level, or inside a function when it is called. An
# import under `if TYPE_CHECKING:` never runs (and annotations are strings here, `from __future__
# import annotations`), so it is no edge: it may name a module that imports this one. An edge goes
# to the module named (`from a.b import c` to `a.b.c` when that is a module, else to `a.b`), not to
# the packages around it: Python runs a package's `__init__` before its modules, and a module that
# needs a name from it imports the package by name (an edge).


def module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking(test: ast.expr) -> bool:
    name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", "")
    return name == "TYPE_CHECKING"


def running_imports(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, but those under `if TYPE_CHECKING:`."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _type_checking(child.test):
            for other in child.orelse:
                yield from running_imports(ast.Module(body=[other], type_ignores=[]))
        elif isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        else:
            yield from running_imports(child)


def _imported_modules(
    node: ast.Import | ast.ImportFrom, package: str, known: set[str]
) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative: from the package up
        parts = package.split(".")
        anchor = ".".join(parts[: len(parts) - node.level + 1])
        base = f"{anchor}.{base}" if base else anchor
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]


def import_graph(package: Path) -> dict[str, dict[str, int]]:
    """Each module of `package` -> {a module of `package` it imports: the line of that import}."""
    paths = {module_name(p, package): p for p in modules(package)}
    graph: dict[str, dict[str, int]] = {}
    for name, path in sorted(paths.items()):
        home = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = graph.setdefault(name, {})
        for node in running_imports(ast.parse(path.read_text())):
            for target in _imported_modules(node, home, set(paths)):
                if target in paths and target != name:
                    edges.setdefault(target, node.lineno)
    return graph


def shortest_circle(graph: dict[str, dict[str, int]], start: str) -> list[str]:
    """The modules of a shortest circle from `start` back to it (breadth first), or []."""
    way = {start: [start]}
    queue = [start]
    for module in queue:
        for target in sorted(graph[module]):
            if target == start:
                return way[module]
            if target not in way:
                way[target] = [*way[module], target]
                queue.append(target)
    return []


def circles(graph: dict[str, dict[str, int]]) -> list[str]:
    """Each import circle as a chain, `a:12 -> b:3 -> a` (a module, the line where it imports the
    next): the shortest circle through each module that is on one, each circle once."""
    found, seen = [], set()
    for start in sorted(graph):
        circle = shortest_circle(graph, start)
        if circle and frozenset(circle) not in seen:
            seen.add(frozenset(circle))
            steps = zip(circle, [*circle[1:], start], strict=True)
            found.append(" -> ".join([*(f"{m}:{graph[m][n]}" for m, n in steps), start]))
    return found


def test_no_import_circle_in_the_package() -> None:
    graph = import_graph(PACKAGE)
    assert {"ftpstack.offline.plan", "ftpstack.local.net.azure"} <= set(graph)
    assert graph["ftpstack.local.net.azure"]["ftpstack.local.net.topology"]
    assert graph["ftpstack.local.vm.uplocal"]["ftpstack.local.vm.deployment"]  # in a function
    found = circles(graph)
    assert found == [], "import circles:\n" + "\n".join(found)


def test_negative_control_an_import_circle_is_seen(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg import b\n")
    (package / "b.py").write_text("import os\n\n\ndef f() -> None:\n    from pkg.a import g\n")
    assert circles(import_graph(package)) == ["pkg.a:1 -> pkg.b:5 -> pkg.a"]
    # Under TYPE_CHECKING it never runs: no circle.
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    import pkg.a\n"
    )
    assert circles(import_graph(package)) == []
    # Through a package's __init__, and relative.
    (package / "__init__.py").write_text("from . import a\n\nNAME = 1\n")
    (package / "a.py").write_text("from pkg import NAME\n")
    assert circles(import_graph(package)) == ["pkg:1 -> pkg.a:1 -> pkg"]
