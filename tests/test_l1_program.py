"""L1: the program under Pulumi mocks — the resource graph and its invariants.

Two layers: the whole program (`__main__.py`) as `make plan` runs it, and the component alone in
the pulumi/examples unit-test style, where each test returns its Output so that an assertion
failing inside `apply` fails the test.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from ftpstack import outputs
from ftpstack.component import CUSTOM_DATA, TYPE_TOKEN, FtpServer, FtpServerArgs
from ftpstack.plan import (
    MASK,
    MOCK_PUBLIC_IP,
    PROJECT_DIR,
    VM_TYPE,
    Plan,
    PlanError,
    Secret,
    _Mocks,
    plan_stack,
)
from tests.test_l0_settings import SSH_KEY, settings

USERS = Secret([{"name": "alice", "password": "alice-password-1"}])
NSG = "azure-native:network:NetworkSecurityGroup"
LB = "azure-native:network:LoadBalancer"
IP = "azure-native:network:PublicIPAddress"


def plan(stack: str = "dev", **overrides: Any) -> Plan:
    return plan_stack(stack, overrides={"users": USERS, **overrides})


def only(p: Plan, type_: str) -> dict[str, Any]:
    found = p.find(type_)
    assert len(found) == 1, f"{len(found)} x {type_}"
    return found[0].raw_inputs


def rendered(p: Plan, name: str) -> str:
    match = re.search(rf"^\s*{name}\s+(.+)$", p.user_data, re.MULTILINE)
    assert match, name
    return match.group(1).strip()


def internet_allows(p: Plan) -> list[dict[str, Any]]:
    rules = only(p, NSG)["securityRules"]
    return [r for r in rules if r["access"] == "Allow" and r["direction"] == "Inbound"]


# -- the whole program -------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_only_ftp_is_open_to_clients(stack: str) -> None:
    p = plan(stack)
    first, last = p.outputs[outputs.PASSIVE_PORT_RANGE].split("-")
    for rule in internet_allows(p):
        sources = rule.get("sourceAddressPrefixes") or [rule["sourceAddressPrefix"]]
        if sources == ["AzureLoadBalancer"]:
            assert rule["destinationPortRange"] == "21"
            continue
        assert rule["destinationPortRange"] in {"21", f"{first}-{last}"}, rule
    rules = sorted(only(p, NSG)["securityRules"], key=lambda r: r["priority"])
    assert rules[-1]["access"] == "Deny" and rules[-1]["destinationPortRange"] == "*"


def test_ssh_is_closed_by_default_and_opens_only_from_its_cidrs() -> None:
    assert all(r["destinationPortRange"] != "22" for r in internet_allows(plan()))
    ssh = [
        r
        for r in internet_allows(plan(sshSourceCidrs=["203.0.113.9/32"]))
        if r["destinationPortRange"] == "22"
    ]
    assert [r["sourceAddressPrefix"] for r in ssh] == ["203.0.113.9/32"]


@pytest.mark.parametrize(
    "overrides", [{}, {"passivePortStart": 40000, "passivePortEnd": 40019, "maxClients": 10}]
)
def test_nsg_passive_range_equals_proftpd_passive_ports(overrides: dict[str, Any]) -> None:
    p = plan(**overrides)
    nsg_ranges = {r["destinationPortRange"] for r in internet_allows(p)} - {"21"}
    first, last = rendered(p, "PassivePorts").split()
    assert nsg_ranges == {f"{first}-{last}"}
    assert p.outputs[outputs.PASSIVE_PORT_RANGE] == f"{first}-{last}"


def test_masquerade_address_is_the_declared_public_ip() -> None:
    p = plan()
    assert rendered(p, "MasqueradeAddress") == p.outputs[outputs.PUBLIC_IP] == MOCK_PUBLIC_IP
    ip = only(p, IP)
    assert ip["sku"]["name"] == "Standard" and ip["publicIPAllocationMethod"] == "Static"
    assert ip["idleTimeoutInMinutes"] == 4


def test_password_ssh_is_disabled_and_the_key_installed() -> None:
    vm = only(plan(), VM_TYPE)
    linux = vm["osProfile"]["linuxConfiguration"]
    assert linux["disablePasswordAuthentication"] is True
    assert linux["ssh"]["publicKeys"][0]["keyData"] == SSH_KEY
    assert "adminPassword" not in vm["osProfile"]


def test_user_data_is_secret_everywhere_it_is_shown() -> None:
    p = plan()
    vm = p.find(VM_TYPE)[0]
    assert vm.inputs["osProfile"]["customData"] == MASK, "customData must reach the engine secret"
    shown = json.dumps(p.to_json())
    assert "alice-password-1" not in shown and "$6$" not in shown
    assert "alice-password-1" not in p.user_data, "only hashes go to the VM"


def test_vm_is_replaced_delete_first_when_the_user_data_changes() -> None:
    vm = plan().find(VM_TYPE)[0]
    assert CUSTOM_DATA in vm.options["replaceOnChanges"]
    assert vm.options["deleteBeforeReplace"] is True


def test_user_data_changes_exactly_when_the_vm_config_changes() -> None:
    base = plan().user_data
    assert plan().user_data == base, "an unchanged stack must not replace the VM"
    other = Secret([{"name": "alice", "password": "changed-password-9"}])
    assert plan(users=other).user_data != base
    assert plan(keepaliveIdleSeconds=50).user_data != base
    assert plan(tags={"owner": "ops"}).user_data == base


def test_load_balancer_mode_has_one_rule_per_port() -> None:
    p = plan("prod", passivePortStart=41000, passivePortEnd=41019, maxClients=10)
    lb = only(p, LB)
    ports = [r["frontendPort"] for r in lb["loadBalancingRules"]]
    assert ports == [21, *range(41000, 41020)]
    assert len(set(ports)) == len(ports)
    for rule in lb["loadBalancingRules"]:
        assert rule["backendPort"] == rule["frontendPort"] and rule["protocol"] == "Tcp"
        assert rule["idleTimeoutInMinutes"] == 4
        assert rule["probe"]["id"].endswith("/probes/ftp-control")
    assert [probe["port"] for probe in lb["probes"]] == [21]
    assert lb["outboundRules"], "cloud-init needs outbound access to install proftpd"
    nic = only(p, "azure-native:network:NetworkInterface")
    config = nic["ipConfigurations"][0]
    assert "publicIPAddress" not in config, "in LB mode the public IP sits on the LB"
    assert config["loadBalancerBackendAddressPools"][0]["id"].endswith(
        "/backendAddressPools/backend"
    )


def test_public_ip_mode_has_no_load_balancer() -> None:
    p = plan()
    assert p.find(LB) == []
    nic = only(p, "azure-native:network:NetworkInterface")
    assert nic["ipConfigurations"][0]["publicIPAddress"]["id"]
    assert nic["networkSecurityGroup"]["id"]


def test_children_are_named_from_the_component_and_parented_to_it() -> None:
    p = plan()
    component = [r for r in p.resources if r.type == TYPE_TOKEN]
    assert len(component) == 1
    name = component[0].name
    for r in p.resources:
        if r is component[0]:
            continue
        assert r.name.startswith(f"{name}-"), r.name
        assert r.parent == name or r.parent.startswith(f"{name}-"), (r.name, r.parent)


def test_existing_resource_group_and_subnet_are_used_not_created() -> None:
    subnet = (
        "/subscriptions/s/resourceGroups/net/providers/Microsoft.Network/"
        "virtualNetworks/hub/subnets/ftp"
    )
    p = plan(useExistingResourceGroup=True, resourceGroupName="shared-rg", existingSubnetId=subnet)
    types = {r.type for r in p.resources}
    assert "azure-native:resources:ResourceGroup" not in types
    assert "azure-native:network:VirtualNetwork" not in types
    nic = only(p, "azure-native:network:NetworkInterface")
    assert nic["ipConfigurations"][0]["subnet"]["id"] == subnet
    assert p.outputs[outputs.RESOURCE_GROUP_NAME] == "shared-rg"


def test_outputs_are_exported_under_the_constant_names() -> None:
    p = plan()
    assert set(p.outputs) == set(outputs.ALL)
    assert p.outputs[outputs.FTP_ENDPOINT] == f"ftp://{p.outputs[outputs.FQDN]}:21"
    assert p.outputs[outputs.CONTROL_PORT] == 21


def test_endpoint_falls_back_to_the_ip_without_a_dns_label() -> None:
    p = plan(dnsLabel="")
    assert p.outputs[outputs.FQDN] == ""
    assert p.outputs[outputs.FTP_ENDPOINT] == f"ftp://{MOCK_PUBLIC_IP}:21"


def test_a_refused_config_registers_no_resource() -> None:
    with pytest.raises(PlanError) as caught:
        plan(passivePortStart=30000, passivePortEnd=30005, maxClients=10)
    assert caught.value.registered == 0
    assert "passivePortStart..passivePortEnd" in str(caught.value)


def test_committed_secure_values_plan_as_masked_placeholders() -> None:
    p = plan_stack("dev")  # the committed file holds `secure:` values only the CLI decrypts
    assert p.outputs[outputs.PUBLIC_IP] == MOCK_PUBLIC_IP
    assert MASK in p.cloud_init and "$6$" not in p.cloud_init


# -- the CLI -----------------------------------------------------------------------------------


def run_plan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ftpstack.plan", *args],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=False,
    )


def test_plan_json_is_one_document_for_tools() -> None:
    result = run_plan("--json", "--stack", "prod")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert set(document) >= {"resources", "outputs", "cloud_init"}
    for r in document["resources"]:
        assert set(r) >= {"type", "name", "parent", "inputs"}
    assert document["cloud_init"].startswith("#cloud-config")
    assert "$6$" not in result.stdout


def test_plan_refuses_a_bad_stack_file_with_one_line_and_exit_2(tmp_path: Path) -> None:
    stack = yaml.safe_load((PROJECT_DIR / "Pulumi.dev.yaml").read_text())
    stack["config"]["ftpstack:passivePortStart"] = 30000
    stack["config"]["ftpstack:passivePortEnd"] = 30005
    stack["config"]["ftpstack:maxClients"] = 10
    path = tmp_path / "Pulumi.bad.yaml"
    path.write_text(yaml.safe_dump(stack))
    result = run_plan("--stack-file", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "passivePortStart..passivePortEnd" in lines[0], result.stderr
    assert result.stdout == ""


def test_plan_text_shows_tree_rules_outputs_and_masked_cloud_init() -> None:
    result = run_plan("--stack", "dev")
    assert result.returncode == 0, result.stderr
    for expected in (
        "ftpstack:azure:FtpServer",
        "allow-ftp-passive",
        "ftpEndpoint",
        "#cloud-config",
    ):
        assert expected in result.stdout
    assert "$6$" not in result.stdout


# -- the component alone, pulumi unit-test style ------------------------------------------------


@pytest.fixture
def mocked() -> None:
    pulumi.runtime.settings.ROOT.set(None)
    pulumi.runtime.set_mocks(_Mocks(), project="ftpstack", stack="unit", preview=False)


@pulumi.runtime.test
def test_component_outputs_resolve(mocked: None) -> pulumi.Output[None]:
    server = FtpServer("unit", FtpServerArgs(settings(dnsLabel="unit-ftp")))

    def check(values: list[Any]) -> None:
        endpoint, ip, port, passive = values
        assert endpoint == "ftp://unit-ftp.westeurope.cloudapp.azure.com:21"
        assert ip == MOCK_PUBLIC_IP and port == 21 and passive == "50000-50099"

    return pulumi.Output.all(
        server.ftp_endpoint, server.public_ip, server.control_port, server.passive_port_range
    ).apply(check)


@pulumi.runtime.test
def test_two_components_do_not_collide(mocked: None) -> pulumi.Output[None]:
    a = FtpServer("a", FtpServerArgs(settings()))
    b = FtpServer("b", FtpServerArgs(settings()))

    def check(names: list[str]) -> None:
        assert names[0] != names[1]

    return pulumi.Output.all(a.vm_name, b.vm_name).apply(check)


# -- post-deploy checks (pulumi-command) --------------------------------------------------------

SMOKE = "command:local:Command"
CLOUD_INIT = "command:remote:Command"


def test_smoke_check_runs_after_the_vm_against_the_public_endpoint() -> None:
    p = plan()
    check = p.find(SMOKE)
    assert len(check) == 1
    assert check[0].parent == "ftp-vm" and "ftp-vm" in check[0].options["dependsOn"]
    create = check[0].raw_inputs["create"]
    first, last = p.outputs[outputs.PASSIVE_PORT_RANGE].split("-")
    assert create.startswith("venv/bin/python -m ftpstack.ftpcheck ")
    assert f"--host {MOCK_PUBLIC_IP}" in create and f"--expect-public-ip {MOCK_PUBLIC_IP}" in create
    assert f"--expect-passive-range {first}-{last}" in create and "--user alice" in create


def test_smoke_check_password_is_a_secret_and_never_in_the_command() -> None:
    check = plan().find(SMOKE)[0]
    assert check.inputs["environment"]["FTP_PASSWORD"] == MASK
    assert check.raw_inputs["environment"]["FTP_PASSWORD"] == "alice-password-1"
    assert "alice-password-1" not in check.raw_inputs["create"]


def test_smoke_check_reruns_exactly_when_the_user_data_changes() -> None:
    def trigger(p: Plan) -> Any:
        return p.find(SMOKE)[0].raw_inputs["triggers"]

    base = plan()
    assert trigger(plan()) == trigger(base)
    assert trigger(plan(maxClients=19)) != trigger(base)
    assert base.find(SMOKE)[0].inputs["triggers"] == [MASK], "a digest of a secret stays secret"


def test_smoke_check_can_be_turned_off() -> None:
    assert plan(postDeployCheck=False).find(SMOKE) == []
    assert plan("prod").find(SMOKE) == [], "prod's FTP is closed to the deploying machine"


def test_cloud_init_check_over_ssh_comes_before_the_smoke_check() -> None:
    p = plan(sshSourceCidrs=["203.0.113.9/32"], cloudInitCheck=True)
    remote = p.find(CLOUD_INIT)
    assert len(remote) == 1 and remote[0].parent == "ftp-vm"
    assert remote[0].raw_inputs["create"] == "cloud-init status --wait --long"
    assert remote[0].raw_inputs["connection"]["host"] == MOCK_PUBLIC_IP
    assert "ftp-cloud-init-check" in p.find(SMOKE)[0].options["dependsOn"]
    assert plan().find(CLOUD_INIT) == [], "off by default"


def test_cloud_init_check_without_ssh_is_refused() -> None:
    with pytest.raises(PlanError, match=r"ftpstack:cloudInitCheck = True: SSH is closed"):
        plan(cloudInitCheck=True)


# -- the data disk -----------------------------------------------------------------------------

DISK = "azure-native:compute:Disk"


def test_data_disk_is_a_separate_resource_attached_at_lun_0() -> None:
    p = plan(dataDiskSizeGb=64)
    disk = p.find(DISK)
    assert len(disk) == 1 and disk[0].raw_inputs["diskSizeGB"] == 64
    assert disk[0].raw_inputs["creationData"]["createOption"] == "Empty"
    (attached,) = only(p, VM_TYPE)["storageProfile"]["dataDisks"]
    assert attached["lun"] == 0 and attached["createOption"] == "Attach"
    assert attached["managedDisk"]["id"].endswith("/Disk/ftp-data")
    assert attached["deleteOption"] == "Detach", "deleting the VM must leave the disk"
    assert plan().find(DISK) == [] and only(plan(), VM_TYPE)["storageProfile"]["dataDisks"] == []


def test_replacing_the_vm_does_not_touch_the_data_disk() -> None:
    before, after = plan(dataDiskSizeGb=64), plan(dataDiskSizeGb=64, maxClients=19)
    assert before.user_data != after.user_data, "the VM is replaced"
    disk_before, disk_after = before.find(DISK)[0], after.find(DISK)[0]
    assert disk_before.raw_inputs == disk_after.raw_inputs, "the disk is not"
    assert not disk_after.options["replaceOnChanges"]
    assert not disk_after.options["deleteBeforeReplace"]


def test_prod_protects_its_data_disk_and_requires_tls() -> None:
    p = plan("prod")
    assert p.find(DISK)[0].options["protect"] is True
    assert plan(dataDiskSizeGb=64).find(DISK)[0].options["protect"] is False
    assert rendered(p, "TLSRequired") == "on"
    assert "<Anonymous" not in p.user_data


def test_smoke_check_speaks_tls_when_tls_is_required() -> None:
    create = plan(tls="required").find(SMOKE)[0].raw_inputs["create"]
    assert "--tls --no-verify" in create
    assert "--tls" not in plan(tls="allowed").find(SMOKE)[0].raw_inputs["create"]
