"""L1: `make plan` — the program evaluated offline, as people and tools read it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from ftpstack.offline import project, text
from ftpstack.offline.plan import MASK, Plan, Resource
from ftpstack.offline.report import render_text
from ftpstack.settings import Settings
from tests.support import (
    OTHER_KEY,
    PASSWORD,
    ROOT,
    SSH_KEY,
    STACK_FILES,
    certificate_pair,
    plan,
    plan_test_stack,
    stack_file,
)


def run_plan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ftpstack.offline.show", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_plan_json_is_one_document_for_tools() -> None:
    result = run_plan("--json", "--stack-file", str(STACK_FILES["prod"]))
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert set(document) >= {
        "stack",
        "label",
        "resources",
        "outputs",
        "cloud_init",
        "live",
        "stand_ins",
        "critical_path",
        "arm_check",
        "billable",
        "monthly_usd",
        "biggest_cost",
        "warnings",
    }
    for r in document["resources"]:
        assert set(r) >= {"type", "name", "parent", "inputs", "options", "dependencies"}
    assert document["cloud_init"].startswith("#cloud-config")
    assert document["arm_check"] == []
    assert "$6$" not in result.stdout


SUMMARY_PARTS = (
    "ftpstack plan for stack 'prod' (Pulumi.prod.yaml;",
    "ftpstack:azure:FtpServer",
    "allow-ftp-passive",
    "allow-nfs-from-the-ftp-servers",
    "balanced: ports 21, 22",
    "probe ftp-control",
    "NAT: ports 50000-50049 (50 rules) -> instance-0",
    "NAT: ports 50050-50099 (50 rules) -> instance-1",
    "Billable units: ~$",
    "Critical path of a first deploy",
    "ARM check: 0 problem(s)",
    "WARNING: ",
    "ftpEndpoint",
)
FILES_PARTS = (
    "#cloud-config",
    "Live configuration of instance 0",
    "Live configuration of instance 1",
    "--- /etc/proftpd/proftpd.conf",
)


def test_plan_text_is_a_summary_and_full_adds_every_file_with_secrets_masked() -> None:
    summary = run_plan("--stack-file", str(STACK_FILES["prod"]))
    assert summary.returncode == 0, summary.stderr
    for expected in SUMMARY_PARTS:
        assert expected in summary.stdout, expected
    assert "TCP reset off" in summary.stdout and "[False]" not in summary.stdout
    assert not [x for x in FILES_PARTS if x in summary.stdout], "the files only with --full"
    assert summary.stdout.splitlines()[-1].endswith("make plan-full")
    full = run_plan("--stack-file", str(STACK_FILES["prod"]), "--full")
    assert full.returncode == 0, full.stderr
    for expected in (*SUMMARY_PARTS, *FILES_PARTS):
        assert expected in full.stdout, expected
    assert "$6$" not in full.stdout and MASK in full.stdout


def test_the_prod_summary_is_under_60_lines_and_none_is_wider_than_the_width() -> None:
    """The summary abbreviates: the VMs' replacement triggers alone take 300 characters."""
    prod = plan_test_stack("prod")
    lines = render_text(prod).splitlines()
    assert len(lines) < 60, "\n".join(lines)
    assert max(map(len, lines)) <= text.WIDTH, max(lines, key=len)
    vm = next(x for x in lines if "VirtualMachine x2" in x)
    assert "ftp-vm, ftp-vm-1" in vm and "+" in vm, vm
    # Negative control: in full, the same plan has a longer line (the VMs' options whole) and
    # is many times longer.
    full = render_text(prod, full=True).splitlines()
    assert max(map(len, full)) > text.WIDTH and len(full) > 5 * len(lines)
    assert "osProfile.customData" in "\n".join(full) and "osProfile.customData" not in vm


def test_make_plan_full_is_make_plan_with_full() -> None:
    def make(*args: str) -> str:
        result = subprocess.run(
            ["make", *args, f"VENV={sys.prefix}"],
            cwd=ROOT,
            env={k: v for k, v in os.environ.items() if k not in {"MAKELEVEL", "MAKEFLAGS"}},
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    fixture = f"--stack-file {STACK_FILES['dev']}"
    full = make("plan-full", f"ARGS={fixture}")
    assert "#cloud-config" in full and full == make("plan", f"ARGS=--full {fixture}")


def test_the_nat_rules_show_as_one_line_per_instance_and_one_write() -> None:
    text_ = render_text(plan("prod"))
    assert "NAT: ports 50000-50049 (50 rules) -> instance-0" in text_
    assert "NAT: ports 50050-50099 (50 rules) -> instance-1" in text_
    assert text_.count("Deployment  ftp-lb-nat") == 1


def _resource(type_: str, name: str, parent: str) -> Resource:
    return Resource(type_, name, parent, f"/x/{name}", {}, {}, [])


def test_a_run_of_alike_siblings_is_one_line_and_different_steps_are_not() -> None:
    subnet, vm, step = (
        "azure-native:network:Subnet",
        "azure-native:compute:VirtualMachine",
        "azure-native:compute:VirtualMachineRunCommandByVirtualMachine",
    )
    vnet = _resource("azure-native:network:VirtualNetwork", "vnet", "ftp")
    subnets = [_resource(subnet, f"r-{n}", "vnet") for n in range(7)]
    text_ = render_text(Plan("t", "t", [vnet, *subnets], {}))
    assert "Subnet x7  r-0, r-1, r-2, r-3, r-4, r-5, r-6" in text_
    assert text_.count("Subnet") == 1
    many = [_resource(subnet, f"subnet-of-a-long-name-{n}", "vnet") for n in range(40)]
    shown = render_text(Plan("t", "t", [vnet, *many], {})).splitlines()
    line = next(x for x in shown if "x40" in x)
    assert line.endswith(" more") and len(line) <= text.WIDTH, line
    # Each VM's two steps are alike in type and options but not a run (their names differ in
    # more than a number): a line per step, naming it under every VM.
    vms = [_resource(vm, "vm", "ftp"), _resource(vm, "vm-1", "ftp")]
    steps = [_resource(step, f"{v.name}-{role}", v.name) for v in vms for role in ("a", "b")]
    each = render_text(Plan("t", "t", [*vms, *steps], {}))
    assert "VirtualMachine x2  vm, vm-1" in each
    assert "VirtualMachineRunCommandByVirtualMachine x2  vm-a, vm-1-a" in each
    assert "VirtualMachineRunCommandByVirtualMachine x2  vm-b, vm-1-b" in each


def test_every_file_reads_as_a_file_never_as_an_escaped_string() -> None:
    shown = render_text(plan(), full=True)
    assert "\\n" not in shown and "\\t" not in shown
    assert "\tweekly" in shown, "logrotate's tabs are kept"


def test_a_stack_file_plan_is_labelled_by_its_file(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.custom.yaml"
    path.write_text(STACK_FILES["dev"].read_text())
    result = run_plan("--stack-file", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ftpstack plan for stack 'custom' (Pulumi.custom.yaml;")


def test_plan_refuses_a_bad_stack_file_with_one_line_and_exit_2(tmp_path: Path) -> None:
    stack = yaml.safe_load(STACK_FILES["dev"].read_text())
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


def test_secure_values_plan_with_stand_ins_and_say_so() -> None:
    p = plan_test_stack("dev")
    assert p.stand_ins == ["users[0].password"]
    assert "planned with stand-ins" in render_text(p)


def test_opting_out_of_the_data_disk_is_warned_about() -> None:
    assert "files live on the OS disk" in render_text(plan(dataDiskSizeGb=0))
    assert "live on the OS disk" not in render_text(plan())


def test_no_password_reaches_any_output() -> None:
    shown = json.dumps(plan().to_json()) + render_text(plan()) + render_text(plan(), full=True)
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


def test_the_plan_prints_the_critical_path_of_a_first_deploy() -> None:
    """Prod's first `pulumi up` writes to Azure in series along its longest chain of
    dependencies; the NAT rules are one write of the load balancer, not a chain of 100."""
    shown = render_text(plan("prod")).split("Critical path of a first deploy: ")[1]
    line = " ".join(shown.split("\nARM check")[0].split())  # wrapped within the width
    writes = int(line.split(" ")[0])
    assert writes <= 25, line
    assert "-narrow -> " in line and line.endswith("ftp-vm-configure -> ftp-vm-1-configure")


# -- a refused certificate or key in a stack file, as `make plan` shows it ------------------------


def refused_plan(path: Path) -> str:
    """`make plan` on a stack file that must be refused: exit 2, nothing on stdout, one line."""
    result = run_plan("--stack-file", str(path))
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2 and result.stdout == "", result
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ftpstack:"), result.stderr
    return lines[0]


def tls_stack(tmp_path: Path, name: str, certificate: str) -> Path:
    """A stack file with this certificate and its key as a `secure:` value (not decryptable
    offline: the certificate's public checks run before a stand-in pair replaces both)."""
    return stack_file(
        tmp_path,
        name,
        {
            "sshPublicKey": SSH_KEY,
            "tls": "required",
            "tlsCertificate": certificate,
            "tlsPrivateKey": {"secure": "v1:c2VjcmV0OmtleQ=="},
        },
    )


def test_a_certificate_that_does_not_parse_or_has_expired_is_one_line(tmp_path: Path) -> None:
    expired, _ = certificate_pair("ftp.example.com", days=-1)
    garbage = "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n"
    line = refused_plan(tls_stack(tmp_path, "expired", expired))
    assert line.startswith("error: ftpstack:tlsCertificate = [PEM]: expired on "), line
    line = refused_plan(tls_stack(tmp_path, "garbage", garbage))
    assert line.startswith("error: ftpstack:tlsCertificate = [PEM]: does not parse"), line
    line = refused_plan(tls_stack(tmp_path, "text", "hello"))
    assert line.startswith("error: ftpstack:tlsCertificate = [PEM]: does not parse"), line
    # Negative control: a valid certificate with its secure key plans, with a stand-in pair.
    valid, _ = certificate_pair("ftp.example.com")
    result = run_plan("--stack-file", str(tls_stack(tmp_path, "valid", valid)))
    assert result.returncode == 0, result.stderr
    assert "tlsPrivateKey" in result.stdout and "stand-in" in result.stdout


def test_a_private_key_as_the_ssh_key_is_one_line_that_shows_nothing_of_it(
    tmp_path: Path,
) -> None:
    private = (
        "-----BEGIN OPENSSH PRIVATE KEY-----\n"
        "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
        "-----END OPENSSH PRIVATE KEY-----\n"
    )
    line = refused_plan(stack_file(tmp_path, "leaked", {"sshPublicKey": private}))
    assert line.startswith("error: ftpstack:sshPublicKey = [secret]: this is a private key"), line
    assert "id_ed25519.pub" in line and "b3BlbnNzaC1rZXkt" not in line, line


def test_warnings_for_what_a_reviewer_must_know() -> None:
    from ftpstack.offline.report import warnings

    def said(stack: str, **raw: Any) -> str:
        return "\n".join(warnings(plan(stack, **raw)))

    assert "passwords and files may cross it in clear" in said("dev", tls="allowed")
    assert "in clear" not in said("dev"), "tls: required is the default"
    assert "in clear" not in said("prod", tls="allowed"), "prod's FTP is not open to all"
    restricted = said("dev", ftpSourceCidrs=["203.0.113.0/24"])
    assert "post-deploy check runs from the deploying machine" in restricted
    assert "post-deploy check" not in said("dev"), "open to all: it reaches"
    assert "post-deploy check" not in said("prod"), "prod turns the check off"
    # The committed examples' key is known by its comment; the tests' own key is not one.
    example_key = f"{SSH_KEY.rsplit(' ', 1)[0]} ftpstack-dev-example"
    assert "committed example's key" in said("dev", sshPublicKey=example_key)
    assert "committed example's key" not in said("dev")
    assert "committed example's key" not in said("dev", sshPublicKey=OTHER_KEY)
