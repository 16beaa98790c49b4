"""L1: the README is the user's door and `docs/` the house — the README stays short and indexes
every page; every page says what it is for and links back; every command they show works as
shown; their examples are the committed files; their links and anchors resolve inside the
repository; the reference tables are what the code generates."""

from __future__ import annotations

import fnmatch
import importlib.util
import itertools
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ftpstack import ftpcheck, outputs
from ftpstack.offline import declared, reference
from ftpstack.settings import FtpUser, Settings
from tests.support import ROOT

README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = {path.relative_to(ROOT).as_posix(): path.read_text() for path in [README, *DOCS]}
DOOR_LIMIT = 15_000  # bytes: a door, not the house
# A fenced block: its indent, its language, its body (as in a list item, indented or not).
FENCE = re.compile(r"^( *)```(\w*)\n(.*?)^\1```$", re.M | re.S)
# Repository paths a page may name in backticks, and test names (`test_x`, `test_x::test_y`).
REPO_PATH = re.compile(r"^(?:ftpstack|tests|policy|examples|scripts|bench|docs|\.github|\.ci)/")
TEST_MODULE = re.compile(r"(test_\w+)(?:\.py)?")


def blocks(text: str, language: str) -> list[str]:
    """The bodies of the page's fenced blocks in this language ("" for none), unindented."""
    out = []
    for indent, lang, body in FENCE.findall(text):
        if lang == language:
            out.append("".join(line[len(indent) :] for line in body.splitlines(keepends=True)))
    return out


def commands(text: str) -> list[str]:
    """Every command line of the page's ```sh blocks, continuations joined, comments dropped."""
    out = []
    for body in blocks(text, "sh"):
        for line in body.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


def section(text: str, title: str) -> str:
    return text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    prose = FENCE.sub("", text)
    return {slug(h) for h in re.findall(r"^#{1,6} (.+)$", prose, re.M)}


def links(text: str) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", FENCE.sub("", text))


# -- the door ----------------------------------------------------------------------------------


def test_the_readme_is_a_door() -> None:
    size = len(README.read_bytes())
    assert size < DOOR_LIMIT, f"README.md is {size} bytes: move what is not the door to docs/"
    # The project's house-keeping hook greps for these two.
    assert "make test" in PAGES["README.md"] and "make plan" in PAGES["README.md"]


def test_the_task_index_links_every_docs_page() -> None:
    index = section(PAGES["README.md"], "Tasks")
    linked = {target.split("#", 1)[0] for target in links(index)}
    assert linked == {f"docs/{page.name}" for page in DOCS}, linked ^ {
        f"docs/{page.name}" for page in DOCS
    }


def opens_with_a_title_and_a_way_back(text: str) -> bool:
    """A one-line title, then a first paragraph that links back to the README."""
    title, first, *_ = [*text.split("\n\n"), ""]
    return title.startswith("# ") and "\n" not in title and "](../README.md" in first


@pytest.mark.parametrize("page", [p.name for p in DOCS])
def test_every_page_says_what_it_is_for_and_links_back(page: str) -> None:
    assert opens_with_a_title_and_a_way_back(PAGES[f"docs/{page}"]), page


def test_negative_control_the_index_and_the_link_back_are_checked() -> None:
    assert links("| x | [Costs](docs/costs.md#a) |") == ["docs/costs.md#a"]
    assert opens_with_a_title_and_a_way_back("# Costs\n\nWhat it costs; [back](../README.md).")
    assert not opens_with_a_title_and_a_way_back("# Costs\n\nWhat it costs.")
    assert not opens_with_a_title_and_a_way_back("Costs\n\n[back](../README.md)")


# -- links -------------------------------------------------------------------------------------


def broken_links(page: str, text: str) -> list[str]:
    """Links that leave the repository, name no file, or name an anchor the target lacks."""
    broken = []
    base = (ROOT / page).parent
    for target in links(text):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        file = (base / path).resolve() if path else ROOT / page
        if not resolves(file, anchor):
            broken.append(target)
    return broken


def resolves(file: Path, anchor: str) -> bool:
    if not file.is_relative_to(ROOT) or not file.exists():
        return False
    return not anchor or (file.suffix == ".md" and anchor in anchors(file.read_text()))


@pytest.mark.parametrize("page", PAGES)
def test_links_resolve_to_files_and_anchors_in_the_repository(page: str) -> None:
    assert broken_links(page, PAGES[page]) == []


def test_negative_control_a_broken_link_or_anchor_is_seen() -> None:
    text = "[a](docs/costs.md#no-such-heading) [b](docs/nope.md) [c](../../etc/passwd) [d](#x)"
    assert broken_links("README.md", text) == [
        "docs/costs.md#no-such-heading",
        "docs/nope.md",
        "../../etc/passwd",
        "#x",
    ]
    assert slug("## What Azure would refuse, caught offline: the ARM check"[3:]) == (
        "what-azure-would-refuse-caught-offline-the-arm-check"
    )
    assert slug("The local VM (L4) and `make up-local`") == "the-local-vm-l4-and-make-up-local"


# -- commands: run where they are safe offline, checked where they need Azure --------------------


def transcripts() -> list[tuple[str, str, list[str]]]:
    """(page, command, shown output) of every ``` block that shows `$ make ...` and its output."""
    out = []
    for page, text in PAGES.items():
        for body in blocks(text, ""):
            first, *shown = body.splitlines()
            if first.startswith("$ make "):
                out.append((page, first[2:], shown))
    return out


@pytest.mark.parametrize(("page", "command", "shown"), transcripts())
def test_a_transcript_prints_exactly_what_the_page_shows(
    page: str, command: str, shown: list[str]
) -> None:
    """The shown command, run as shown (through make, with this venv), prints the shown lines;
    for `make plan`, the planner alone prints them without make's own last line."""
    # As a user's shell runs it: not as a sub-make of `make test` (which says "make[1]").
    shell = {k: v for k, v in os.environ.items() if k not in {"MAKELEVEL", "MAKEFLAGS", "MFLAGS"}}
    argv = shlex.split(command)
    make = subprocess.run(
        [*argv, f"VENV={sys.prefix}"], cwd=ROOT, env=shell, capture_output=True, text=True
    )
    printed = make.stdout.splitlines() + make.stderr.strip().splitlines()
    assert printed == shown, page
    make_failed = shown[-1].startswith("make: ***")
    assert (make.returncode == 2) == make_failed, make.returncode
    if argv[:2] == ["make", "plan"]:
        args = next((a.split("=", 1)[1] for a in argv if a.startswith("ARGS=")), "")
        module = subprocess.run(
            [sys.executable, "-m", "ftpstack.offline.show", *shlex.split(args)],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert module.stdout.splitlines() + module.stderr.strip().splitlines() == (
            shown[:-1] if make_failed else shown
        )
        if make_failed:
            assert module.returncode == 2


def test_the_refused_config_is_shown_as_a_transcript() -> None:
    assert any("bad-passive-range" in command for _, command, _ in transcripts())


def makefile_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.M))


def make_commands(text: str) -> set[str]:
    shown = set(re.findall(r"`make ([a-z][a-z-]*)", text))
    return shown | {c.split()[1] for c in commands(text) if c.startswith("make ")}


@pytest.mark.parametrize("page", PAGES)
def test_every_make_command_shown_is_a_target(page: str) -> None:
    assert make_commands(PAGES[page]) <= makefile_targets()


def test_negative_control_an_unknown_make_target_is_seen() -> None:
    shown = make_commands("`make plna`\n```sh\nmake tset   # typo\n```\n")
    assert shown == {"plna", "tset"} and not shown <= makefile_targets()


def ftpcheck_commands() -> list[tuple[str, str]]:
    return [
        (page, command)
        for page, text in PAGES.items()
        for command in commands(text)
        if "-m ftpstack.ftpcheck" in command
    ]


@pytest.mark.parametrize(("page", "command"), ftpcheck_commands())
def test_a_post_deploy_check_shown_parses_and_speaks_tls(page: str, command: str) -> None:
    """It needs a deployed server, so it is parsed, not run: its options are the check's own,
    and it takes the password from the environment the check reads, never an argument."""
    env, program, *argv = shlex.split(command.replace("<ip>", "198.51.100.10"))
    assert env == f"{ftpcheck.PASSWORD_ENV}=..." and program == "venv/bin/python", command
    args = ftpcheck.arguments().parse_args(argv[2:])
    assert args.tls and args.user == "alice" and args.expect_public_ip == "198.51.100.10"


def test_the_pages_show_a_post_deploy_check() -> None:
    assert {page for page, _ in ftpcheck_commands()} >= {"docs/deploy.md", "docs/operations.md"}


@pytest.mark.parametrize("page", PAGES)
def test_every_python_module_shown_exists(page: str) -> None:
    shown = set(re.findall(r"python -m (ftpstack[\w.]*)", PAGES[page]))
    assert {m for m in shown if importlib.util.find_spec(m) is None} == set()


# -- what the pages name: files, tests, examples ------------------------------------------------


def expand(braced: str) -> list[str]:
    """`a/test_{x,y}.py` -> a/test_x.py, a/test_y.py (one level of braces, as a shell does)."""
    parts = re.split(r"\{([^}]*)\}", braced)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(c) for c in itertools.product(*choices)]


def missing_names(text: str) -> list[str]:
    """Repository paths, test modules and test functions named in backticks that do not exist."""
    tests = {p.stem: p for p in (ROOT / "tests").rglob("test_*.py")}
    missing = []
    for code in re.findall(r"`([^`\s]+)`", FENCE.sub("", text)):
        for name in expand(code):
            module, _, function = name.partition("::")
            test = TEST_MODULE.fullmatch(module)
            if REPO_PATH.match(module):
                file = ROOT / module
            elif test:
                file = tests.get(test.group(1), ROOT / "tests" / module)
            else:
                continue
            if not file.exists():
                missing.append(name)
            elif function:
                defined = re.findall(r"^def (test_\w+)", file.read_text(), re.M)
                if not fnmatch.filter(defined, function):
                    missing.append(name)
    return missing


@pytest.mark.parametrize("page", PAGES)
def test_every_file_and_test_named_exists(page: str) -> None:
    assert missing_names(PAGES[page]) == []


def test_negative_control_a_moved_file_or_test_is_seen() -> None:
    text = (
        "`tests/local/test_network.py` `test_nothing` `test_component::test_no_such_thing` "
        "`ftpstack/local/{net,gone}/` `test_component::test_smoke_check_*` `/srv/ftp`"
    )
    assert missing_names(text) == [
        "tests/local/test_network.py",
        "test_nothing",
        "test_component::test_no_such_thing",
        "ftpstack/local/gone/",
    ]


# What the README tells the operator to make their own in the example stacks.
OPERATORS = {
    "ftpstack:ftpSourceCidrs",
    "ftpstack:sshPublicKey",
    "ftpstack:users",
    "ftpstack:dnsLabel",
}


def test_the_production_example_is_what_pulumi_prod_yaml_sets() -> None:
    """The page's block is the example's settings; the customers' CIDRs it shows are the
    operator's to replace, so the example's own are only checked to be customers' (restricted)."""
    features = section(PAGES["docs/environments.md"], "Production features")
    block = re.search(r"```yaml\n(config:\n.+?)```", features, re.S)
    assert block
    shown = yaml.safe_load(block.group(1))["config"]
    committed = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())["config"]
    assert set(shown) <= set(committed) and "ftpstack:ftpSourceCidrs" in shown
    assert {k: committed[k] for k in shown if k not in OPERATORS} == {
        k: v for k, v in shown.items() if k not in OPERATORS
    }
    cidrs = committed["ftpstack:ftpSourceCidrs"]
    assert cidrs and not [c for c in cidrs if declared.is_internet(c)], "prod's FTP is restricted"
    assert all(set(u["password"]) == {"secure"} for u in committed["ftpstack:users"])


def test_the_example_stacks_leave_the_dns_label_to_their_owner() -> None:
    """A label is unique per region: the examples set none, and a label an operator sets is
    never one the README or an example's comment shows as an example (it would collide)."""
    stacks = {stack: (ROOT / f"Pulumi.{stack}.yaml").read_text() for stack in ("dev", "prod")}
    shown = {
        label
        for text in (PAGES["README.md"], *stacks.values())
        for line in text.splitlines()
        if "dnsLabel" in line
        for label in re.findall(r"e\.g\. ([a-z0-9][a-z0-9-]*)", line)
    }
    assert shown >= {"acme-files-dev"}, "the README shows an example label"
    for stack, text in stacks.items():
        label = yaml.safe_load(text)["config"].get("ftpstack:dnsLabel")
        assert label not in shown, f"{stack}: {label} is an example label; choose your own"


# -- the reference tables: generated from the code, committed, checked ---------------------------


def test_the_reference_pages_are_what_the_code_generates() -> None:
    assert reference.stale() == [], "run `make docs` and commit the result"


def test_every_key_and_output_is_documented_once() -> None:
    configuration, contract = PAGES["docs/configuration.md"], PAGES["docs/outputs.md"]
    for model in (Settings, FtpUser):
        for field in model.model_fields.values():
            assert f"| `{field.alias}` |" in configuration, field.alias
    for name in outputs.ALL:
        assert contract.count(f"| `{name}` |") == 1, name
    for page, text in PAGES.items():
        if page not in {"docs/configuration.md", "docs/outputs.md"}:
            assert "| `maxClientsPerHost` |" not in text and "| `ftpEndpoint` |" not in text, page


def test_negative_control_a_changed_description_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Settings.model_fields["max_clients"], "description", "Changed.")
    assert reference.stale() == [reference.CONFIGURATION]
    monkeypatch.setattr(FtpUser.model_fields["read_only"], "description", "Changed.")
    assert "| `readOnly` | `false` | Changed. |" in reference.configuration_page()


def test_negative_control_a_changed_output_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    changed = dict(outputs.CONTRACT)
    changed[outputs.FQDN] = outputs.Output("string", "something else")
    monkeypatch.setattr(outputs, "CONTRACT", changed)
    assert reference.stale() == [reference.OUTPUTS]


def test_make_docs_writes_what_is_stale_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "docs").mkdir()
    committed = (ROOT / reference.OUTPUTS).read_text()
    (tmp_path / reference.OUTPUTS).write_text(committed.replace("| `vmName` |", "| `vmNom` |"))
    assert reference.main(["--check"], root=tmp_path) == 1
    assert reference.main([], root=tmp_path) == 0
    assert reference.stale(tmp_path) == [] and reference.main(["--check"], root=tmp_path) == 0
    said = capsys.readouterr().out.splitlines()
    assert said[:2] == [
        "docs/configuration.md is stale: run `make docs`",
        "docs/outputs.md is stale: run `make docs`",
    ]
    assert said[2:4] == [
        "docs/configuration.md regenerated: review and commit it",
        "docs/outputs.md regenerated: review and commit it",
    ]
    (tmp_path / reference.OUTPUTS).write_text("# Outputs\n\nno markers\n")
    assert reference.main([], root=tmp_path) == 2


def test_make_docs_as_shown_finds_the_committed_pages_up_to_date() -> None:
    shell = {k: v for k, v in os.environ.items() if k not in {"MAKELEVEL", "MAKEFLAGS", "MFLAGS"}}
    make = subprocess.run(
        ["make", "docs", "ARGS=--check", f"VENV={sys.prefix}"],
        cwd=ROOT,
        env=shell,
        capture_output=True,
        text=True,
    )
    assert make.returncode == 0, make.stdout + make.stderr
    assert make.stdout.splitlines() == [f"{page} is up to date" for page in reference.PAGES]
