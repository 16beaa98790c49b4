"""L1: the README is the user's door — every command it shows works as shown, its examples are the
committed files, and it links to nothing outside the repository.

The committed stacks are the operator's to edit (their SSH key, their customers' CIDRs, their
users and passwords, a `dnsLabel`): what the README shows of those is checked for what it is,
never for the README's own values, so an operator's edit fails nothing here."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import yaml

from ftpstack import ftpcheck
from ftpstack.offline import declared
from tests.support import ROOT

README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    return README.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def test_the_refused_config_example_prints_exactly_what_the_readme_shows() -> None:
    """The shown command, run as shown (through make, with this venv), prints the shown lines:
    the planner's one line, then make's own."""
    block = re.search(
        r"```\n\$ (make plan ARGS=\"(--stack-file [^\"]+)\")\n(error: .+)\n(make: .+)\n```", README
    )
    assert block, "README shows a refused config"
    # As a user's shell runs it: not as a sub-make of `make test` (which says "make[1]").
    shell = {k: v for k, v in os.environ.items() if k not in {"MAKELEVEL", "MAKEFLAGS", "MFLAGS"}}
    make = subprocess.run(
        [*shlex.split(block.group(1)), f"VENV={sys.prefix}"],
        cwd=ROOT,
        env=shell,
        capture_output=True,
        text=True,
        check=False,
    )
    assert make.returncode == 2
    assert make.stderr.strip().splitlines() == [block.group(3), block.group(4)]
    module = subprocess.run(
        [sys.executable, "-m", "ftpstack.offline.show", *shlex.split(block.group(2))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert module.returncode == 2 and module.stderr.strip() == block.group(3)


def test_every_make_command_the_readme_shows_is_a_target() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.M))
    shown = set(re.findall(r"`make ([a-z][a-z-]*)", README))
    assert shown and shown <= targets, shown - targets


# What the README tells the operator to make their own in the example stacks.
OPERATORS = {
    "ftpstack:ftpSourceCidrs",
    "ftpstack:sshPublicKey",
    "ftpstack:users",
    "ftpstack:dnsLabel",
}


def test_the_production_example_is_what_pulumi_prod_yaml_sets() -> None:
    """The README's block is the example's settings; the customers' CIDRs it shows are the
    operator's to replace, so the example's own are only checked to be customers' (restricted)."""
    block = re.search(r"```yaml\n(config:\n.+?)```", section("Production features"), re.S)
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


def test_the_smoke_check_example_parses_and_speaks_tls() -> None:
    block = re.search(
        r"FTP_PASSWORD=\.\.\. venv/bin/python -m ftpstack\.ftpcheck (.+?)\n```", README, re.S
    )
    assert block
    argv = shlex.split(block.group(1).replace("\\\n", " ").replace("<ip>", "198.51.100.10"))
    args = ftpcheck.arguments().parse_args(argv)
    assert args.tls and args.user == "alice" and args.expect_public_ip == "198.51.100.10"


def test_the_example_stacks_leave_the_dns_label_to_their_owner() -> None:
    """A label is unique per region: the examples set none, and a label an operator sets is
    never one the README or an example's comment shows as an example (it would collide)."""
    stacks = {stack: (ROOT / f"Pulumi.{stack}.yaml").read_text() for stack in ("dev", "prod")}
    shown = {
        label
        for text in (README, *stacks.values())
        for line in text.splitlines()
        if "dnsLabel" in line
        for label in re.findall(r"e\.g\. ([a-z0-9][a-z0-9-]*)", line)
    }
    assert shown >= {"acme-files-dev"}, "the README shows an example label"
    for stack, text in stacks.items():
        label = yaml.safe_load(text)["config"].get("ftpstack:dnsLabel")
        assert label not in shown, f"{stack}: {label} is an example label; choose your own"


def test_the_readme_links_to_nothing_outside_the_repository() -> None:
    for target in re.findall(r"\]\(([^)]+)\)", README):
        assert target.startswith(("http://", "https://", "#")) or (ROOT / target).exists(), target
    assert "../" not in README
