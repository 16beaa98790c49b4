"""L1: stack files read the way the Pulumi CLI reads them; malformed ones give one line and exit 2;
stacks with their own TLS material plan with a stand-in pair after their public checks."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ftpstack.offline import stackfile
from ftpstack.offline.errors import PlanError
from ftpstack.offline.plan import plan_stack, stack_config
from tests.support import ROOT, SSH_KEY, certificate_pair, stack_file


def values(tmp_path: Path, text: str) -> dict[str, object]:
    path = tmp_path / "Pulumi.t.yaml"
    path.write_text(text)
    return stackfile.read_config(path)


def test_scalars_reach_the_program_as_written(tmp_path: Path) -> None:
    found = values(
        tmp_path,
        "config:\n  ftpstack:tls: off\n  ftpstack:maxClients: 010\n"
        "  ftpstack:dnsLabel: null\n  ftpstack:anonymous: yes\n"
        "  ftpstack:imageVersion:\n  location: westeurope\n",
    )
    assert found == {
        "ftpstack:tls": "off",
        "ftpstack:maxClients": "010",
        "ftpstack:dnsLabel": "",
        "ftpstack:anonymous": "yes",
        "ftpstack:imageVersion": "",
        "ftpstack:location": "westeurope",
    }


def test_objects_and_lists_are_yaml_1_2_and_secure_values_stay_marked(tmp_path: Path) -> None:
    found = values(
        tmp_path,
        "config:\n  ftpstack:users:\n    - name: a\n      readOnly: on\n"
        "      password:\n        secure: v1:abc\n",
    )
    assert found == {
        "ftpstack:users": [{"name": "a", "readOnly": "on", "password": stackfile.Secure("v1:abc")}]
    }


def test_tls_off_as_a_user_writes_it_plans(tmp_path: Path) -> None:
    """PyYAML (YAML 1.1) reads `off` as false, which the model refuses; the CLI passes "off"."""
    path = stack_file(tmp_path, "t", {"sshPublicKey": SSH_KEY, "postDeployCheck": False})
    path.write_text(path.read_text() + "  ftpstack:tls: off\n")
    plan = plan_stack("t", stack_file=path)
    assert "mod_tls" not in plan.bundles()[0]["files"][1]["content"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("config: [1, 2", "not valid YAML (line"),
        ("config:\n  ftpstack:tls: : :\n", "not valid YAML"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("config: 7\n", "config: must be a mapping"),
        ("config:\n  7: x\n", "config key 7 is not a name"),
    ],
)
def test_a_malformed_stack_file_is_one_line(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "Pulumi.bad.yaml"
    path.write_text(text)
    with pytest.raises(PlanError) as caught:
        stack_config("bad", stack_file=path)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_the_cli_gives_one_line_and_exit_2_never_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.bad.yaml"
    path.write_text("config:\n  ftpstack:users: [{name: a, password: {secure: 1}}\n")
    result = subprocess.run(
        [sys.executable, "-m", "ftpstack.offline.show", "--stack-file", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_a_plaintext_password_in_the_stack_file_is_refused_without_showing_it(
    tmp_path: Path,
) -> None:
    path = stack_file(
        tmp_path,
        "t",
        {
            "sshPublicKey": SSH_KEY,
            "users": [
                {"name": "a", "password": {"secure": "v1:x"}},
                {"name": "b", "password": "plain-password-77"},
            ],
        },
    )
    with pytest.raises(PlanError) as caught:
        stack_config("t", stack_file=path)
    message = str(caught.value)
    assert (
        "users[1].password is stored in plaintext" in message and "plain-password-77" not in message
    )


def test_a_changed_ciphertext_plans_as_a_changed_secret(tmp_path: Path) -> None:
    def users_file(ciphertext: str) -> str:
        path = stack_file(
            tmp_path,
            "t",
            {"sshPublicKey": SSH_KEY, "users": [{"name": "a", "password": {"secure": ciphertext}}]},
        )
        files = plan_stack("t", stack_file=path).bundles()[0]["files"]
        return str(next(f["content"] for f in files if f["path"].endswith("ftpd.passwd")))

    assert users_file("v1:one") == users_file("v1:one")
    assert users_file("v1:one") != users_file("v1:two")


def own_certificate(tmp_path: Path, cert: str) -> Path:
    """A stack file with its own certificate, its key a `secure:` value only the CLI decrypts."""
    config = {"tls": "required", "tlsCertificate": cert, "tlsPrivateKey": {"secure": "v1:key"}}
    return stack_file(tmp_path, "t", {"sshPublicKey": SSH_KEY, **config})


def test_a_stack_with_its_own_certificate_plans_with_a_stand_in_pair(tmp_path: Path) -> None:
    cert, _ = certificate_pair("ftp.example.com")
    path = own_certificate(tmp_path, cert)
    first, second = plan_stack("t", stack_file=path), plan_stack("t", stack_file=path)
    assert first.bundles() == second.bundles(), "the stand-in is the same every time"
    assert "tlsPrivateKey" in first.stand_ins


def test_an_expired_certificate_is_refused_offline_even_with_a_secret_key(tmp_path: Path) -> None:
    cert, _ = certificate_pair("ftp.example.com", days=-2)
    path = own_certificate(tmp_path, cert)
    with pytest.raises(PlanError, match="ftpstack:tlsCertificate = \\[PEM\\]: expired"):
        stack_config("t", stack_file=path)


def test_a_secrets_file_checks_the_real_key_against_the_certificate(tmp_path: Path) -> None:
    cert, key = certificate_pair("ftp.example.com")
    _, other = certificate_pair("other.example.com")
    path = own_certificate(tmp_path, cert)
    good = stack_file(tmp_path, "good.secrets", {"tlsPrivateKey": key})
    bad = stack_file(tmp_path, "bad.secrets", {"tlsPrivateKey": other})
    assert plan_stack("t", stack_file=path, secrets_file=good).stand_ins == []
    with pytest.raises(PlanError, match="does not belong to tlsCertificate"):
        plan_stack("t", stack_file=path, secrets_file=bad)


def test_a_stack_file_planned_from_elsewhere_is_all_the_program_reads(tmp_path: Path) -> None:
    """The program reads its stack file (for its plaintext check) where the planner runs it:
    beside the planned file, so a project's own `Pulumi.dev.yaml` never reaches the plan of
    another dev stack file (the tests' own), whatever the operator wrote in it."""
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    for name in ("__main__.py", "Pulumi.yaml"):
        shutil.copyfile(ROOT / name, project / name)
    in_clear = [{"name": "demo", "password": "in-clear-password-1"}]
    stack_file(project, "dev", {"sshPublicKey": SSH_KEY, "users": in_clear})
    with pytest.raises(PlanError, match=r"users\[0\]\.password is stored in plaintext"):
        plan_stack("dev", project_dir=project)  # negative control: the project's own is refused
    secure = [{"name": "demo", "password": {"secure": "v1:bm90IGEgY2lwaGVydGV4dA=="}}]
    path = stack_file(elsewhere, "dev", {"sshPublicKey": SSH_KEY, "users": secure})
    planned = plan_stack("dev", project_dir=project, stack_file=path)
    assert planned.label == "Pulumi.dev.yaml" and planned.stand_ins == ["users[0].password"]
