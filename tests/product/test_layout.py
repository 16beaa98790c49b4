"""The tree keeps the shape it was given: the product (`ftpstack/` without `offline/` and
`local/`) is what is deployed and imports neither of the tools; no two modules import each other,
directly or around a circle (whichever runs first would see the other half-made); units stay
readable (no module over 450 lines, no function over 60); no Python program hides in a string
(`python -c`), where ruff and mypy never see it; only the tests that document the example stacks
read them (the operator edits them)."""

from __future__ import annotations

import ast
import re
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


# -- the example stacks are the operator's -------------------------------------------------------
# The committed Pulumi.dev.yaml and Pulumi.prod.yaml are examples an operator edits (README: their
# SSH key, their customers' CIDRs, their passwords). Only the tests that document them read them;
# every other test plans the tests' own stacks (tests/fixtures, `tests.support.plan`), so that
# editing the examples as the README says fails no test.

# Modules that document the examples: they read them, and check their shape, never their values.
EXAMPLE_DOCUMENTING = {"tests/offline/test_examples.py", "tests/offline/test_readme.py"}
# Modules that run a CLI with --stack in a clone whose stacks are the tests' own (`clone`).
IN_A_CLONE = {"tests/offline/test_diff.py"}
_STACK_FILE_NAME = re.compile(r"""^f?['"]Pulumi\..+\.yaml['"]$""")


def _plans_the_projects_own(call: ast.Call) -> bool:
    """plan_stack/stack_config(stack, project_dir, overrides, stack_file, …) without a stack file
    or a project of its own: it reads `Pulumi.<stack>.yaml` of this project."""
    name = ast.unparse(call.func).rsplit(".", 1)[-1]
    given = {k.arg for k in call.keywords}
    return (
        name in {"plan_stack", "stack_config"}
        and len(call.args) < 2
        and not given & {"project_dir", "stack_file"}
    )


def example_reads(path: Path) -> list[str]:
    """Where a module reads an example stack: `ROOT / "Pulumi.<stack>.yaml"` (or PROJECT_DIR),
    a plan of this project's stack by name (`plan_stack("prod")`), or a command given a stack
    by name (`--stack`, make's `STACK=`), which reads the example in its working directory."""
    clone = str(path.relative_to(ROOT)) in IN_A_CLONE if path.is_relative_to(ROOT) else False
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.BinOp)
            and isinstance(node.op, ast.Div)
            and ast.unparse(node.left) in {"ROOT", "PROJECT_DIR"}
            and _STACK_FILE_NAME.match(ast.unparse(node.right))
        ) or (isinstance(node, ast.Call) and _plans_the_projects_own(node)):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and (node.value == "--stack" or node.value.startswith("STACK="))
            and not clone
        ):
            found.append(f"{node.lineno}: {node.value!r}")
    return found


def test_only_the_tests_that_document_the_examples_read_them() -> None:
    tests = [p for p in modules(ROOT / "tests") if p != Path(__file__)]  # not the detector's
    readers = {str(p.relative_to(ROOT)): example_reads(p) for p in tests if example_reads(p)}
    assert set(readers) == EXAMPLE_DOCUMENTING, {
        p: r for p, r in readers.items() if p not in EXAMPLE_DOCUMENTING
    }


def test_negative_control_each_way_of_reading_an_example_is_seen(tmp_path: Path) -> None:
    module = tmp_path / "test_m.py"
    for line in (
        'text = (ROOT / "Pulumi.prod.yaml").read_text()',
        'text = (PROJECT_DIR / f"Pulumi.{stack}.yaml").read_text()',
        'p = plan_stack("prod", overrides={"instances": 1})',
        'c = stack_config("dev")',
        'run_plan("--json", "--stack", "prod")',
        'subprocess.run(["make", "plan", "STACK=prod"])',
    ):
        module.write_text(f"{line}\n")
        assert example_reads(module), line
    module.write_text(
        'p = plan_stack("dev", stack_file=STACK_FILES["dev"])\n'
        'q = plan_stack("dev", project_dir=tmp)\n'
        'r = run_plan("--stack-file", str(STACK_FILES["prod"]))\n'
        'y = (ROOT / "Pulumi.yaml").read_text()\n'
        'edit(clone / "Pulumi.dev.yaml", "a", "b")\n'
    )
    assert example_reads(module) == []
