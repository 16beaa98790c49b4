"""The tree keeps the shape it was given: the product (`ftpstack/` without `offline/` and
`local/`) is what is deployed and imports neither of the tools; units stay readable (no module
over 450 lines, no function over 60); no Python program hides in a string (`python -c`), where
ruff and mypy never see it."""

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
