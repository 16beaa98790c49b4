"""L1: `make plan` — the program evaluated offline, as people and tools read it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from ftpstack.offline import project
from ftpstack.offline.plan import MASK, plan_stack
from ftpstack.offline.report import render_text
from ftpstack.settings import Settings
from tests.support import PASSWORD, ROOT, plan


def run_plan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ftpstack.offline.show", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_plan_json_is_one_document_for_tools() -> None:
    result = run_plan("--json", "--stack", "prod")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert set(document) >= {
        "resources",
        "outputs",
        "cloud_init",
        "live",
        "arm_check",
        "billable",
        "monthly_usd",
        "warnings",
    }
    for r in document["resources"]:
        assert set(r) >= {"type", "name", "parent", "inputs", "options", "dependencies"}
    assert document["cloud_init"].startswith("#cloud-config")
    assert document["arm_check"] == []
    assert "$6$" not in result.stdout


def test_plan_text_shows_every_part_and_masks_every_secret() -> None:
    result = run_plan("--stack", "prod")
    assert result.returncode == 0, result.stderr
    for expected in (
        "ftpstack plan for stack 'prod' (Pulumi.prod.yaml;",
        "ftpstack:azure:FtpServer",
        "allow-ftp-passive",
        "balanced: port 21",
        "NAT: ports 50000-50049 (50 rules) -> instance-0",
        "NAT: ports 50050-50099 (50 rules) -> instance-1",
        "Billable units",
        "ARM check: 0 problem(s)",
        "ftpEndpoint",
        "#cloud-config",
        "Live configuration of instance 0",
        "Live configuration of instance 1",
        "--- /etc/proftpd/proftpd.conf",
    ):
        assert expected in result.stdout, expected
    assert "$6$" not in result.stdout and MASK in result.stdout
    assert "TCP reset off" in result.stdout and "[False]" not in result.stdout


def test_a_long_run_of_sibling_resources_is_one_line() -> None:
    text = render_text(plan("prod"))
    assert "ftp-nat-passive-50000 … ftp-nat-passive-50099 (100 resources, chained)" in text
    assert text.count("InboundNatRule") == 1


def test_every_file_reads_as_a_file_never_as_an_escaped_string() -> None:
    text = render_text(plan())
    assert "\\n" not in text and "\\t" not in text
    assert "\tweekly" in text, "logrotate's tabs are kept"


def test_a_stack_file_plan_is_labelled_by_its_file(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.custom.yaml"
    path.write_text((ROOT / "Pulumi.dev.yaml").read_text())
    result = run_plan("--stack-file", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ftpstack plan for stack 'custom' (Pulumi.custom.yaml;")


def test_plan_refuses_a_bad_stack_file_with_one_line_and_exit_2(tmp_path: Path) -> None:
    stack = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    stack["config"].update(
        {
            "ftpstack:passivePortStart": 30000,
            "ftpstack:passivePortEnd": 30005,
            "ftpstack:maxClients": 10,
        }
    )
    path = tmp_path / "Pulumi.bad.yaml"
    path.write_text(yaml.safe_dump(stack))
    result = run_plan("--stack-file", str(path))
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "passivePortStart..passivePortEnd" in lines[0], result.stderr


def test_committed_secure_values_plan_with_stand_ins_and_say_so() -> None:
    p = plan_stack("dev")
    assert p.stand_ins == ["users[0].password"]
    assert "planned with stand-ins" in render_text(p)


def test_opting_out_of_the_data_disk_is_warned_about() -> None:
    assert "files and the self-signed TLS identity live on the OS disk" in render_text(
        plan(dataDiskSizeGb=0)
    )
    assert "live on the OS disk" not in render_text(plan())


def test_no_password_reaches_any_output() -> None:
    shown = json.dumps(plan().to_json()) + render_text(plan())
    assert PASSWORD not in shown and "$6$" not in shown


# -- Pulumi.yaml ----------------------------------------------------------------------------------


def test_pulumi_yaml_is_generated_from_the_model() -> None:
    committed = (ROOT / "Pulumi.yaml").read_text()
    assert committed == project.render(), "Pulumi.yaml is stale: run `make pulumi-yaml`"


def test_every_key_is_declared_with_description_and_default() -> None:
    declared = project.project_file()["config"]
    assert set(declared) == {f.alias for f in Settings.model_fields.values()}
    for key, spec in declared.items():
        assert spec["description"], key
        assert spec["type"] in {"string", "integer", "boolean", "array", "object"}, key
        if key != "sshPublicKey":
            assert "default" in spec, key
    assert project.project_file()["runtime"]["options"]["virtualenv"] == "venv"


def test_model_defaults_round_trip_through_pulumi_yaml() -> None:
    from tests.support import settings

    declared = project.project_file()["config"]
    raw = {key: spec["default"] for key, spec in declared.items() if "default" in spec}
    assert settings(**raw) == settings()


def test_readme_documents_every_key_and_output() -> None:
    from ftpstack import outputs

    readme = (ROOT / "README.md").read_text()
    for field in Settings.model_fields.values():
        assert f"| `{field.alias}` |" in readme, field.alias
    for name in outputs.ALL:
        assert f"| `{name}` |" in readme, name
