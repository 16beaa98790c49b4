"""The GitHub Actions workflows: actionlint and zizmor (offline) find nothing, each tool flags a
deliberately bad workflow (the negative control), and the workflows do what the project needs
(tests, the offline diff and ARM check, previews with the policy pack under a read-only identity
of their own, OIDC only, prod behind approval)."""

from __future__ import annotations

import copy
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
PR = WORKFLOWS / "pull-request.yml"
DEPLOY = WORKFLOWS / "deploy.yml"

BAD_WORKFLOW = """\
name: bad
on: pull_request_target
jobs:
  build:
    runs-on: ubuntu-latest
    needs: does-not-exist
    steps:
      - uses: actions/checkout@v4
        with:
          ref: ${{ github.event.pull_request.head.sha }}
      - uses: pulumi/actions@v5
        with:
          command: preview
          stack-name: dev
      - run: echo "${{ github.event.pull_request.title }}"
"""


def tool(name: str) -> str:
    """The tool from this interpreter's environment (where requirements-dev installs it)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is not installed: pip install -r requirements-dev.txt"
    return found


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"GH_TOKEN", "GITHUB_TOKEN"}}
    env["ZIZMOR_OFFLINE"] = "true"  # belt and braces with --offline: never the network
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def actionlint(directory: Path) -> subprocess.CompletedProcess[str]:
    files = sorted(str(p) for p in directory.glob("*.y*ml"))
    assert files, f"no workflow in {directory}"
    return run(tool("actionlint"), "-no-color", *files)


def zizmor(directory: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # --no-config: no zizmor.yml can silence a finding; the auditor persona is the strictest.
    return run(
        tool("zizmor"),
        "--offline",
        "--no-config",
        "--persona=auditor",
        "--no-progress",
        "--color=never",
        f"--cache-dir={tmp_path / 'zizmor-cache'}",
        str(directory),
    )


@pytest.fixture
def bad_workflows(tmp_path: Path) -> Path:
    directory = tmp_path / ".github" / "workflows"
    directory.mkdir(parents=True)
    (directory / "bad.yml").write_text(BAD_WORKFLOW)
    return directory


def load(path: Path) -> dict[str, Any]:
    raw: dict[Any, Any] = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the key `on` as True.
    raw["on"] = raw.pop(True, raw.get("on"))
    return {str(key): value for key, value in raw.items()}


# -- the linters --------------------------------------------------------------------------------


def test_actionlint_finds_nothing() -> None:
    result = actionlint(WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_flags_the_bad_workflow(bad_workflows: Path) -> None:
    result = actionlint(bad_workflows)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "does-not-exist" in result.stdout
    assert "github.event.pull_request.title" in result.stdout  # untrusted input in a script


def test_zizmor_offline_finds_nothing(tmp_path: Path) -> None:
    result = zizmor(WORKFLOWS, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout, result.stdout


def test_zizmor_flags_the_bad_workflow(bad_workflows: Path, tmp_path: Path) -> None:
    result = zizmor(bad_workflows, tmp_path)
    assert result.returncode >= 10, result.stdout + result.stderr  # 10+: findings
    for audit in ("dangerous-triggers", "template-injection", "unpinned-uses", "artipacked"):
        assert audit in result.stdout, (audit, result.stdout)


# -- what the workflows do ----------------------------------------------------------------------


def steps(document: dict[str, Any], job: str) -> list[dict[str, Any]]:
    return list(document["jobs"][job]["steps"])


def uses(document: dict[str, Any], job: str, action: str) -> dict[str, Any]:
    found = [s for s in steps(document, job) if str(s.get("uses", "")).startswith(action + "@")]
    assert len(found) == 1, (job, action)
    return found[0]


@pytest.mark.parametrize("path", [PR, DEPLOY], ids=lambda p: p.name)
def test_least_privilege_and_pinned(path: Path) -> None:
    document = load(path)
    assert document["permissions"] == {}, "the default token gets nothing"
    assert "pull_request_target" not in document["on"]
    for name, job in document["jobs"].items():
        assert "permissions" in job, name
        for step in job["steps"]:
            if "uses" in step:
                ref = step["uses"].split("@", 1)[1]
                assert len(ref) == 40 and int(ref, 16) >= 0, step["uses"]
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


def test_pull_requests_run_tests_diff_and_both_previews() -> None:
    document = load(PR)
    assert list(document["on"]) == ["pull_request"]
    test_step = steps(document, "test")[-1]
    assert test_step["run"].startswith("sudo -E") and "make test" in test_step["run"]
    assert test_step["env"]["CI"] == "true"
    preview = document["jobs"]["preview"]
    assert preview["environment"] == "preview"
    assert preview["strategy"]["matrix"]["stack"] == ["dev", "prod"]
    pulumi = uses(document, "preview", "pulumi/actions")["with"]
    assert pulumi["command"] == "preview" and pulumi["comment-on-pr"] is True
    assert pulumi["policyPacks"] == "policy"
    assert preview["permissions"] == {
        "contents": "read",
        "id-token": "write",
        "pull-requests": "write",
    }


@pytest.mark.parametrize(("path", "job"), [(PR, "preview"), (DEPLOY, "dev"), (DEPLOY, "prod")])
def test_azure_login_is_openid_connect_only(path: Path, job: str) -> None:
    document = load(path)
    login = uses(document, job, "azure/login")["with"]
    assert set(login) == {"client-id", "tenant-id", "subscription-id"}
    assert document["jobs"][job]["permissions"]["id-token"] == "write"
    text = path.read_text()
    assert "client-secret" not in text and "AZURE_CREDENTIALS" not in text
    assert "ARM_CLIENT_SECRET" not in text


def test_main_deploys_dev_then_prod_behind_approval() -> None:
    document = load(DEPLOY)
    assert document["on"] == {"push": {"branches": ["main"]}}
    jobs = document["jobs"]
    assert uses(document, "dev", "pulumi/actions")["with"]["command"] == "up"
    assert jobs["prod"]["needs"] == "dev"
    assert jobs["prod"]["environment"] == "production"
    prod_up = uses(document, "prod", "pulumi/actions")["with"]
    assert prod_up["command"] == "up" and prod_up["stack-name"].endswith("/prod")


@pytest.mark.parametrize(("make_exit", "step_exit"), [(0, 0), (1, 0), (2, 2)])
def test_the_diff_step_treats_changes_as_success(
    tmp_path: Path, make_exit: int, step_exit: int
) -> None:
    """The step's own script, run with a stand-in `make` that exits as `make diff` would."""
    script = next(s["run"] for s in steps(load(PR), "diff") if s.get("name") == "make diff")
    fake = tmp_path / "bin" / "make"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "make $*"\necho "~ ftp-vm (replace)"\nexit {make_exit}\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = {
        "PATH": f"{fake.parent}:{os.environ['PATH']}",
        "BASE_REF": "main",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
    }
    result = subprocess.run(
        ["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == step_exit, result.stderr
    assert "diff BASE=origin/main" in result.stdout
    if step_exit == 0:
        comment = (tmp_path / "comment.md").read_text()
        assert "~ ftp-vm (replace)" in comment
        assert comment == (tmp_path / "summary.md").read_text()


def test_the_arm_check_step_fails_the_job_on_problems(tmp_path: Path) -> None:
    """The step's own script, with a stand-in planner exiting as `ftpstack.offline.show` does:
    0 clean, 3 ARM check problems, 2 not plannable."""
    script = next(s["run"] for s in steps(load(PR), "diff") if s.get("name", "").startswith("ARM"))
    names = [s.get("name", s.get("uses")) for s in steps(load(PR), "diff")]
    assert names.index("comment the diff") < names.index("ARM check (make plan, every stack)")
    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    for stack in ("dev", "prod"):
        (tmp_path / f"Pulumi.{stack}.yaml").write_text("config: {}\n")

    def run_step(exits: dict[str, int]) -> subprocess.CompletedProcess[str]:
        cases = "".join(
            f'  {k}) echo "ARM check: {x} problem(s)"; exit {x} ;;\n' for k, x in exits.items()
        )
        python.write_text(f'#!/bin/sh\ncase "$4" in\n{cases}esac\n')
        python.chmod(0o755)
        env = {"PATH": os.environ["PATH"], "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")}
        return subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    clean = run_step({"dev": 0, "prod": 0})
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "prod: ARM check: 0 problem(s)" in (tmp_path / "summary.md").read_text()
    for exits, expected in (
        ({"dev": 0, "prod": 3}, "title=ARM check::prod"),
        ({"dev": 2, "prod": 0}, "title=make plan::dev"),
    ):
        failed = run_step(exits)
        assert failed.returncode == 1 and expected in failed.stdout, failed.stdout


# -- the preview's identity is its own, read-only one --------------------------------------------

PREVIEW_CLIENT_ID = "vars.PREVIEW_AZURE_CLIENT_ID"
PREVIEW_TOKEN = "secrets.PULUMI_PREVIEW_ACCESS_TOKEN"
DEPLOY_CLIENT_ID = "vars.AZURE_CLIENT_ID"
DEPLOY_TOKEN = "secrets.PULUMI_ACCESS_TOKEN"
SHARED = {"vars.AZURE_TENANT_ID", "vars.AZURE_SUBSCRIPTION_ID", "vars.PULUMI_ORG"}
# What each job may name, besides github.token: the preview only its own identity and token.
ALLOWED = {
    ("pull-request", "test"): set(),
    ("pull-request", "diff"): set(),
    ("pull-request", "preview"): {PREVIEW_CLIENT_ID, PREVIEW_TOKEN, *SHARED},
    ("deploy", "dev"): {DEPLOY_CLIENT_ID, DEPLOY_TOKEN, *SHARED},
    ("deploy", "prod"): {DEPLOY_CLIENT_ID, DEPLOY_TOKEN, *SHARED},
}
ENVIRONMENTS = {"preview": "preview", "dev": "dev", "prod": "production"}
CONTEXT_REFERENCE = re.compile(r"\b(vars|secrets)(?:\.(\w+)|\[\s*['\"](\w+)['\"]\s*\])?")


def references(job: dict[str, Any]) -> set[str]:
    """Every vars./secrets. name a job uses; a bare `secrets` (toJSON(secrets)) is "secrets.*"."""
    text = yaml.safe_dump(job)
    return {f"{m[1]}.{m[2] or m[3] or '*'}" for m in CONTEXT_REFERENCE.finditer(text)}


def wiring(document: dict[str, Any], job: str) -> tuple[str, str, str]:
    """(azure/login client-id, ARM_CLIENT_ID, PULUMI_ACCESS_TOKEN) of a job, as expressions."""
    login = uses(document, job, "azure/login")["with"]["client-id"]
    env = document["jobs"][job]["env"]
    return login, env["ARM_CLIENT_ID"], env["PULUMI_ACCESS_TOKEN"]


def separation_problems(documents: dict[str, dict[str, Any]]) -> list[str]:
    """Why the preview could act as production (or production as the preview); empty: it cannot."""
    problems = []
    for (workflow, job), allowed in ALLOWED.items():
        spec = documents[workflow]["jobs"][job]
        extra = references(spec) - allowed
        if extra:
            problems.append(f"{workflow}/{job} names {sorted(extra)}")
        if job in ENVIRONMENTS and spec.get("environment") != ENVIRONMENTS[job]:
            problems.append(f"{workflow}/{job} runs in {spec.get('environment')!r}")
    expected = {
        ("pull-request", "preview"): (PREVIEW_CLIENT_ID, PREVIEW_CLIENT_ID, PREVIEW_TOKEN),
        ("deploy", "dev"): (DEPLOY_CLIENT_ID, DEPLOY_CLIENT_ID, DEPLOY_TOKEN),
        ("deploy", "prod"): (DEPLOY_CLIENT_ID, DEPLOY_CLIENT_ID, DEPLOY_TOKEN),
    }
    for (workflow, job), names in expected.items():
        actual = wiring(documents[workflow], job)
        if actual != tuple(f"${{{{ {n} }}}}" for n in names):
            problems.append(f"{workflow}/{job} logs in with {actual}")
    return problems


def documents() -> dict[str, dict[str, Any]]:
    return {"pull-request": load(PR), "deploy": load(DEPLOY)}


def test_the_preview_has_its_own_read_only_identity() -> None:
    assert separation_problems(documents()) == []
    text = PR.read_text()
    for documented in ("Reader", "repo:<owner>/<repo>:environment:preview", '"Stack Read"'):
        assert documented in text, f"the preview setup no longer documents {documented}"


def _production_in_preview(d: dict[str, dict[str, Any]]) -> None:
    """The issue as reported: the preview logs in as production."""
    job = d["pull-request"]["jobs"]["preview"]
    job["env"] |= {
        "ARM_CLIENT_ID": "${{ vars.AZURE_CLIENT_ID }}",
        "PULUMI_ACCESS_TOKEN": "${{ secrets.PULUMI_ACCESS_TOKEN }}",
    }
    next(s for s in job["steps"] if "azure/login" in s.get("uses", ""))["with"]["client-id"] = (
        "${{ vars.AZURE_CLIENT_ID }}"
    )


BREACHES = {
    "production-identity": _production_in_preview,
    "production-environment": lambda d: d["pull-request"]["jobs"]["preview"].update(
        environment="production"
    ),
    "no-environment": lambda d: d["pull-request"]["jobs"]["preview"].pop("environment"),
    "all-secrets": lambda d: d["pull-request"]["jobs"]["preview"]["env"].update(
        ALL="${{ toJSON(secrets) }}"
    ),
    "token-by-index": lambda d: d["pull-request"]["jobs"]["preview"]["env"].update(
        PULUMI_ACCESS_TOKEN="${{ secrets['PULUMI_ACCESS_TOKEN'] }}"
    ),
    "diff-gets-a-token": lambda d: d["pull-request"]["jobs"]["diff"].update(
        env={"PULUMI_ACCESS_TOKEN": "${{ secrets.PULUMI_ACCESS_TOKEN }}"}
    ),
    "prod-as-preview": lambda d: d["deploy"]["jobs"]["prod"]["env"].update(
        ARM_CLIENT_ID="${{ vars.PREVIEW_AZURE_CLIENT_ID }}"
    ),
}


@pytest.mark.parametrize("breach", sorted(BREACHES))
def test_a_preview_that_could_act_as_production_is_caught(breach: str) -> None:
    """Negative controls: each way of handing production's identity around is found."""
    broken = copy.deepcopy(documents())
    BREACHES[breach](broken)
    assert separation_problems(broken), breach
