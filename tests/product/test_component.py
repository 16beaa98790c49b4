"""L1: the program under Pulumi mocks — the resource graph and its invariants: what is open, what
is secret, what changes live and what replaces what, in which order a deployment runs.

Two layers: the whole program (`__main__.py`) as `make plan` runs it, read through the shared
vocabulary (`ftpstack.offline.declared`); and the component alone in the pulumi/examples
unit-test style, where each test returns its Output so that a failing assertion fails the test.
"""

from __future__ import annotations

import itertools
import json
import re
from functools import cache
from typing import Any

import pulumi
import pytest

from ftpstack import ftpcheck, outputs, paths
from ftpstack.component import TYPE_TOKEN, FtpServer, FtpServerArgs
from ftpstack.offline import declared as d
from ftpstack.offline.errors import PlanError
from ftpstack.offline.mocks import MOCK_PUBLIC_IP, Mocks
from ftpstack.offline.plan import MASK, Plan, Resource, Secret
from tests.support import (
    ONE_SERVER,
    OTHER_KEY,
    PASSWORD,
    USER,
    USERS,
    certificate_pair,
    plan_test_stack,
    settings,
)


@cache
def _plan(stack: str, frozen: str) -> Plan:
    overrides = {
        k: (Secret(v["secret"]) if isinstance(v, dict) and "secret" in v else v)
        for k, v in json.loads(frozen).items()
    }
    return plan_test_stack(stack, {"users": USERS, **overrides})


def plan(stack: str = "dev", **overrides: Any) -> Plan:
    plain = {k: ({"secret": v.value} if isinstance(v, Secret) else v) for k, v in overrides.items()}
    return _plan(stack, json.dumps(plain, sort_keys=True))


def view(p: Plan) -> d.Declared:
    return d.Declared(p.to_json())


def raw(p: Plan, type_: str) -> dict[str, Any]:
    (found,) = p.find(type_)
    return found.raw_inputs


def directive(text: str, name: str) -> str:
    match = re.search(rf"^\s*{name}\s+(.+)$", text, re.MULTILINE)
    assert match, name
    return match.group(1).strip()


def conf(p: Plan, instance: int = 0) -> str:
    files = {f["path"]: f["content"] for f in p.bundles()[instance]["files"]}
    return str(files[paths.PROFTPD_CONF])


# -- what is open --------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_only_ftp_and_sftp_are_open_to_clients(stack: str) -> None:
    v = view(plan(stack))
    first, last = v.passive_range[0], v.passive_range[-1]
    sources = {}
    for rule in v.server_rules():
        if not rule.allows:
            continue
        if rule.sources == (d.PROBE_SOURCE,):
            assert rule.ports == (paths.HEALTH_PORT, paths.HEALTH_PORT)
            continue
        assert rule.ports in {(21, 21), (22, 22), (first, last)}, rule
        sources[rule.ports] = rule.sources
    # SFTP is open exactly where FTP is.
    assert sources[(22, 22)] == sources[(21, 21)] == sources[(first, last)]
    assert v.server_rules()[-1].access == "Deny" and v.server_rules()[-1].ports is None
    assert {r.nsg for r in v.open_to_internet()} <= v.server_nsgs()
    without = view(plan(stack, sftp=False))
    assert all(r.ports != (22, 22) for r in without.server_rules() if r.allows)


def test_the_shares_endpoint_admits_only_the_ftp_servers() -> None:
    """The endpoint sits in a subnet of its own whose NSG lets in NFS from the servers' security
    group only; every server's NIC is a member; nothing else reaches it, not the VNet."""
    p = plan("prod")
    v = view(p)
    (endpoint,) = p.find(d.PRIVATE_ENDPOINT)
    (files,) = [s for s in p.find(d.SUBNET) if s.name.endswith("-files-subnet")]
    assert endpoint.raw_inputs["subnet"]["id"] == files.id
    assert files.raw_inputs["privateEndpointNetworkPolicies"] == "Enabled"
    nsg = next(n for n in p.find(d.NSG) if n.id == files.raw_inputs["networkSecurityGroup"]["id"])
    rules = v.security_rules({nsg.name})
    assert [(r.access, r.port_text, r.sources) for r in rules] == [
        ("Allow", "2049", ("asg:ftp-servers",)),
        ("Deny", "*", ("*",)),
    ]
    (group,) = p.find("azure-native:network:ApplicationSecurityGroup")
    for nic in p.find(d.NIC):
        (config,) = nic.raw_inputs["ipConfigurations"]
        assert config["applicationSecurityGroups"] == [{"id": group.id}]
    (share,) = p.find(d.FILE_SHARE)
    assert share.raw_inputs["rootSquash"] == "RootSquash"
    assert not plan("dev").find("azure-native:network:ApplicationSecurityGroup"), "no share"


@pytest.mark.parametrize("sftp, port", [(True, 2200), (False, 22)])
def test_ssh_is_closed_by_default_and_opens_only_from_its_cidrs(sftp: bool, port: int) -> None:
    """Admin SSH is sshd's port: 2200 while SFTP has 22, else 22."""
    assert all(r.ports != (2200, 2200) for r in view(plan()).security_rules() if r.allows)
    ssh = [
        r
        for r in view(plan(sshSourceCidrs=["203.0.113.9/32"], sftp=sftp)).security_rules()
        if r.name == "allow-ssh"
    ]
    assert [(r.sources, r.ports) for r in ssh] == [(("203.0.113.9/32",), (port, port))]


@pytest.mark.parametrize("sftp, port", [(True, 2200), (False, 22)])
def test_behind_a_load_balancer_ssh_goes_through_its_own_nat_rule(sftp: bool, port: int) -> None:
    v = view(
        plan(
            "prod", **ONE_SERVER, sshSourceCidrs=["203.0.113.9/32"], cloudInitCheck=True, sftp=sftp
        )
    )
    assert [
        (n.frontend_port, n.backend_port, n.pool) for n in v.nat_rules() if n.name == "ssh-0"
    ] == [(port, port, "instance-0")]
    assert not [n for n in view(plan("prod")).nat_rules() if n.name.startswith("ssh")]


@pytest.mark.parametrize(
    "overrides", [{}, {"passivePortStart": 40000, "passivePortEnd": 40019, "maxClients": 10}]
)
def test_nsg_passive_range_equals_proftpd_passive_ports(overrides: dict[str, Any]) -> None:
    p = plan(**overrides)
    nsg = {r.port_text for r in view(p).security_rules() if r.allows} - {"21", "22"}
    first, last = directive(conf(p), "PassivePorts").split()
    assert nsg == {f"{first}-{last}"} and p.outputs[outputs.PASSIVE_PORT_RANGE] == f"{first}-{last}"


def test_masquerade_address_is_the_declared_public_ip() -> None:
    p = plan()
    assert directive(conf(p), "MasqueradeAddress") == p.outputs[outputs.PUBLIC_IP] == MOCK_PUBLIC_IP
    ip = raw(p, d.PUBLIC_IP)
    assert ip["sku"]["name"] == "Standard" and ip["publicIPAllocationMethod"] == "Static"
    assert ip["idleTimeoutInMinutes"] == 4


def test_behind_a_load_balancer_21_and_22_are_balanced_and_passive_ports_are_nat_rules() -> None:
    p = plan("prod", **ONE_SERVER)
    v = view(p)
    lb = raw(p, d.LOAD_BALANCER)
    assert v.balanced_ports() == [21, 22] and len(lb["outboundRules"]) == 1
    assert view(plan("prod", **ONE_SERVER, sftp=False)).balanced_ports() == [21]
    assert [n.frontend_port for n in v.nat_rules()] == list(v.passive_range)
    assert all(n.frontend_port == n.backend_port and n.pool == "instance-0" for n in v.nat_rules())
    (probe,) = lb["probes"]
    assert (probe["port"], probe["intervalInSeconds"], probe["probeThreshold"]) == (
        paths.HEALTH_PORT,
        5,
        2,
    )
    assert "idleTimeoutInMinutes" not in raw(p, d.PUBLIC_IP), "the rules carry the idle timeout"
    config = raw(p, d.NIC)["ipConfigurations"][0]
    assert "publicIPAddress" not in config, "behind an LB the public IP sits on the LB"
    pools = [x["id"].rsplit("/", 1)[-1] for x in config["loadBalancerBackendAddressPools"]]
    assert pools == ["backend", "instance-0"]


def test_the_nic_depends_on_the_load_balancer_it_joins() -> None:
    for nic in plan("prod").find(d.NIC):
        assert "ftp-lb" in nic.dependencies, nic.name


def test_public_ip_mode_has_no_load_balancer() -> None:
    p = plan()
    assert p.find(d.LOAD_BALANCER) == [] and p.find(d.NAT_RULE) == []
    assert raw(p, d.NIC)["ipConfigurations"][0]["publicIPAddress"]["id"]


# -- secrets ---------------------------------------------------------------------------------------


def test_the_bootstrap_is_secret_free_and_the_configuration_secret() -> None:
    p = plan()
    assert PASSWORD not in p.user_data and "$6$" not in p.user_data
    (step,) = [s for s in p.find(d.RUN_COMMAND) if s.name.endswith("-configure")]
    assert step.inputs["protectedParameters"] == MASK, "the bundle reaches the engine secret"
    users = {f["path"]: f["content"] for f in p.bundles()[0]["files"]}[paths.USERS_FILE]
    assert users.startswith(f"{USER}:$6$") and PASSWORD not in users
    shown = json.dumps(p.to_json())
    assert PASSWORD not in shown and "$6$" not in shown


def test_password_ssh_is_disabled_and_the_first_key_installed() -> None:
    vm = raw(plan(), d.VM)
    linux = vm["osProfile"]["linuxConfiguration"]
    assert linux["disablePasswordAuthentication"] is True
    assert linux["ssh"]["publicKeys"][0]["keyData"].startswith("ssh-ed25519 ")
    assert "adminPassword" not in vm["osProfile"]


# -- what changes live, what replaces ------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"users": Secret([{"name": USER, "password": "changed-password-9"}])},
        {
            "users": Secret(
                [
                    {"name": USER, "password": PASSWORD},
                    {"name": "bob", "password": "bob-password-22"},
                ]
            )
        },
        {"maxClients": 19},
        {"tls": "allowed"},
        {"keepaliveIdleSeconds": 50},
        {"passivePortStart": 40000, "passivePortEnd": 40099},
        {"sshPublicKey": OTHER_KEY},
    ],
)
def test_a_day_two_change_is_live_not_a_replacement(change: dict[str, Any]) -> None:
    base, after = plan(), plan(**change)
    assert after.user_data == base.user_data, "the bootstrap, and so the VM, stays"
    assert after.bundles() != base.bundles() or change.get("sshPublicKey"), (
        "the configuration changes"
    )


def test_the_vm_is_replaced_exactly_for_what_azure_cannot_change() -> None:
    (vm,) = plan().find(d.VM)
    assert "osProfile.customData" in vm.options["replaceOnChanges"]
    assert "storageProfile.imageReference" in vm.options["replaceOnChanges"]
    assert vm.options["ignoreChanges"] == ["osProfile.linuxConfiguration.ssh.publicKeys"]
    assert vm.options["deleteBeforeReplace"] is True
    assert plan(dataDiskSizeGb=0).user_data != plan().user_data, "storage is the bootstrap's"


def test_a_deployment_narrows_then_opens_then_configures() -> None:
    p = plan("prod", **ONE_SERVER)
    names = {r.name: r for r in p.resources}
    passive_rule = names["ftp-nsg-allow-ftp-passive"]
    assert "ftp-vm-narrow" in passive_rule.dependencies
    configure = names["ftp-vm-configure"]
    assert {"ftp-nsg-allow-ftp-passive", "ftp-lb-nat"} <= set(configure.dependencies)
    assert "ftp-vm-configure" in smoke_check(plan()).dependencies


@pytest.mark.parametrize("instances", [2, 3])
def test_nat_ports_move_only_after_every_instance_stopped_announcing_them(instances: int) -> None:
    """A port that moves from one instance to another is re-pointed by the one write of the NAT
    rules, which comes after every instance's narrowing step and before any configuration."""
    p = plan("prod", instances=instances, zones=[1, 2], maxClients=30)
    (nat,) = p.find(d.DEPLOYMENT)
    narrows = {r.name for r in p.find(d.RUN_COMMAND) if r.name.endswith("-narrow")}
    assert len(narrows) == instances and narrows <= set(nat.dependencies)
    for step in (r for r in p.find(d.RUN_COMMAND) if r.name.endswith("-configure")):
        assert nat.name in step.dependencies
    rules = view(p).nat_rules()
    assert len(rules) == len(view(p).passive_range) - len(view(p).passive_range) % instances
    assert {r.pool for r in rules} == {f"instance-{i}" for i in range(instances)}


def test_the_load_balancer_itself_declares_no_nat_rules() -> None:
    """azure-native keeps the NAT rules Azure has when the load balancer's own update leaves them
    unset; declaring them there too would write them early, before the narrowing steps."""
    (lb,) = plan("prod").find(d.LOAD_BALANCER)
    assert "inboundNatRules" not in lb.inputs
    assert not plan("prod").find(d.NAT_RULE)


def test_sibling_rules_are_chained() -> None:
    p = plan("prod", sshSourceCidrs=["203.0.113.7/32"])
    rules = [r for r in p.find(d.SECURITY_RULE) if r.name != "ftp-nsg-allow-ftp-passive"]
    assert len(rules) >= 4
    for before, after in itertools.pairwise(rules):
        assert before.name in after.dependencies


# -- several instances -----------------------------------------------------------------------------


def test_instances_spread_over_zones_each_with_its_slice_one_after_the_other() -> None:
    p = plan("prod", instances=2, zones=[1, 2], maxClients=50)
    vms = sorted(p.find(d.VM), key=lambda r: r.name)
    assert [r.name for r in vms] == ["ftp-vm", "ftp-vm-1"]
    assert [r.raw_inputs["zones"] for r in vms] == [["1"], ["2"]]
    assert [b["proftpd"]["passive"] for b in p.bundles()] == ["50000-50049", "50050-50099"]
    second = next(r for r in p.resources if r.name == "ftp-vm-1-configure")
    assert "ftp-vm-configure" in second.dependencies, "rolling: one instance at a time"
    assert [i["passivePorts"] for i in p.outputs[outputs.INSTANCES]] == [
        "50000-50049",
        "50050-50099",
    ]


# -- checks, disks, naming, outputs ---------------------------------------------------------------


def smoke_check(p: Plan) -> Resource:
    found = [r for r in p.find(d.LOCAL_COMMAND) if r.name.endswith(d.SMOKE_CHECK_SUFFIX)]
    assert len(found) == 1, [r.name for r in found]
    return found[0]


def test_smoke_check_logs_in_as_its_own_account_and_pins_the_stacks_certificate() -> None:
    p = plan()
    check = smoke_check(p)
    argv = check.raw_inputs["create"]
    assert f"--user {paths.CHECK_USER} --tls --sftp" in argv and "--no-verify" not in argv
    assert check.inputs["environment"][ftpcheck.PASSWORD_ENV] == MASK
    assert PASSWORD not in json.dumps(check.raw_inputs), "never a customer's password"
    pinned = check.raw_inputs["environment"][ftpcheck.CA_PEM_ENV]
    files = {f["path"]: f["content"] for f in p.bundles()[0]["files"]}
    assert pinned == files[paths.SELF_SIGNED_CERT], "exactly the certificate the server serves"
    users = files[paths.USERS_FILE]
    assert users.startswith(f"{USER}:") and f"\n{paths.CHECK_USER}:$6$" in users
    pinned_keys = check.raw_inputs["environment"][ftpcheck.KNOWN_HOSTS_ENV].splitlines()
    exported = [line.split(" ", 1)[1] for line in p.outputs[outputs.SFTP_HOST_KEYS]]
    assert pinned_keys == [f"198.51.100.10 {key}" for key in exported] and len(exported) == 3


def test_smoke_check_never_sends_a_password_in_clear() -> None:
    """With `tls: off` FTP is checked by its greeting only; the password goes over SFTP alone
    (encrypted, after the host key matched); without SFTP there is no password at all."""
    plain = smoke_check(plan(tls="off"))
    argv = plain.raw_inputs["create"]
    assert "--tls" not in argv and "--banner-only --sftp" in argv
    assert plain.inputs["environment"][ftpcheck.PASSWORD_ENV] == MASK
    neither = smoke_check(plan(tls="off", sftp=False))
    assert "--user" not in neither.raw_inputs["create"]
    assert ftpcheck.PASSWORD_ENV not in (neither.raw_inputs.get("environment") or {})


def test_smoke_check_checks_a_supplied_certificate_for_its_name() -> None:
    cert, key = certificate_pair("ftp.example.com")
    check = smoke_check(plan(tls="required", tlsCertificate=cert, tlsPrivateKey=Secret(key)))
    assert "--server-name ftp.example.com" in check.raw_inputs["create"]
    assert ftpcheck.CA_PEM_ENV not in check.raw_inputs["environment"], "the machine's CAs judge"


def test_smoke_check_reruns_exactly_when_the_configuration_changes() -> None:
    def trigger(p: Plan) -> Any:
        return smoke_check(p).raw_inputs["triggers"]

    assert trigger(plan()) == trigger(plan(tags={"owner": "ops"}))
    assert trigger(plan(maxClients=19)) != trigger(plan())
    assert smoke_check(plan()).inputs["triggers"] == [MASK]


def test_smoke_check_can_be_turned_off_and_its_account_with_it() -> None:
    off = plan(postDeployCheck=False)
    assert not [r for r in off.find(d.LOCAL_COMMAND) if r.name.endswith(d.SMOKE_CHECK_SUFFIX)]
    users = {f["path"]: f["content"] for f in off.bundles()[0]["files"]}[paths.USERS_FILE]
    assert paths.CHECK_USER not in users
    prod = plan("prod")
    assert not [r for r in prod.find(d.LOCAL_COMMAND) if r.name.endswith(d.SMOKE_CHECK_SUFFIX)], (
        "prod's FTP is closed to the deploying machine"
    )


def test_the_identity_is_made_once_and_kept_secret() -> None:
    """Made by a command on the deploying machine whose output is a secret in the state; a new
    command line (another venv) never makes new keys."""
    p = plan()
    (made,) = [r for r in p.find(d.LOCAL_COMMAND) if r.name.endswith(d.IDENTITY_SUFFIX)]
    assert made.raw_inputs["create"].endswith("-m ftpstack.identity")
    assert made.options["ignoreChanges"] == ["create"]
    files = {f["path"]: f for f in p.bundles()[0]["files"]}
    key = files[paths.SELF_SIGNED_KEY]
    assert key["mode"] == "0600" and "PRIVATE KEY" in key["content"]
    assert not paths.SELF_SIGNED_KEY.startswith(paths.FTP_ROOT), "never on the shared storage"
    assert p.bundles() == plan().bundles(), "the stand-in identity plans the same every time"


def test_cloud_init_check_over_ssh_comes_before_the_smoke_check() -> None:
    p = plan(sshSourceCidrs=["203.0.113.9/32"], cloudInitCheck=True)
    (remote,) = p.find(d.REMOTE_CHECK)
    assert remote.raw_inputs["connection"]["host"] == MOCK_PUBLIC_IP
    assert "ftp-cloud-init-check" in smoke_check(p).dependencies
    assert plan().find(d.REMOTE_CHECK) == []
    with pytest.raises(PlanError, match=r"ftpstack:cloudInitCheck = True: SSH is closed"):
        plan(cloudInitCheck=True)


def test_every_stack_has_a_data_disk_unless_it_opts_out() -> None:
    (disk,) = plan().find(d.DISK)
    assert disk.raw_inputs["creationData"]["createOption"] == "Empty"
    (attached,) = raw(plan(), d.VM)["storageProfile"]["dataDisks"]
    assert attached["lun"] == paths.DATA_DISK_LUN and attached["createOption"] == "Attach"
    assert attached["deleteOption"] == "Detach", "deleting the VM must leave the disk"
    assert plan(dataDiskSizeGb=0).find(d.DISK) == []
    assert plan("prod", **ONE_SERVER).find(d.DISK)[0].options["protect"] is True
    shared = plan("prod")
    assert shared.find(d.DISK) == [], "two servers keep their files on the shared share"
    assert all(
        r.options["protect"] for r in [*shared.find(d.FILE_SHARE), *shared.find(d.STORAGE_ACCOUNT)]
    )


def test_children_are_named_from_the_component_and_parented_to_it() -> None:
    p = plan("prod")
    (component,) = [r for r in p.resources if r.type == TYPE_TOKEN]
    # A storage account's name is lowercase letters and digits only (Azure's naming rules).
    (account,) = p.find(d.STORAGE_ACCOUNT)
    assert account.name == f"{component.name}files"
    for r in p.resources:
        if r is not component and r is not account:
            assert r.name.startswith(f"{component.name}-"), r.name
        if r is not component:
            assert r.parent in {component.name, account.name} or r.parent.startswith(
                f"{component.name}-"
            ), r.name


def test_existing_resource_group_and_subnet_are_used_not_created() -> None:
    subnet = "/subscriptions/s/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/hub/subnets/ftp"  # noqa: E501
    p = plan(useExistingResourceGroup=True, resourceGroupName="shared-rg", existingSubnetId=subnet)
    types = {r.type for r in p.resources}
    assert d.RESOURCE_GROUP not in types and d.VNET not in types
    assert raw(p, d.NIC)["ipConfigurations"][0]["subnet"]["id"] == subnet
    assert p.outputs[outputs.RESOURCE_GROUP_NAME] == "shared-rg"


def test_outputs_are_exported_under_the_constant_names() -> None:
    p = plan(dnsLabel="acme-ftp-dev")
    assert set(p.outputs) == set(outputs.ALL)
    assert p.outputs[outputs.FTP_ENDPOINT] == f"ftp://{p.outputs[outputs.FQDN]}:21"
    assert p.outputs[outputs.CONTROL_PORT] == 21
    (instance,) = p.outputs[outputs.INSTANCES]
    assert instance == {
        "name": "ftp-vm",
        "privateIp": "10.20.1.4",
        "passivePorts": p.outputs[outputs.PASSIVE_PORT_RANGE],
    }


def test_endpoint_falls_back_to_the_ip_without_a_dns_label() -> None:
    p = plan(dnsLabel="")
    assert (
        p.outputs[outputs.FQDN] == ""
        and p.outputs[outputs.FTP_ENDPOINT] == f"ftp://{MOCK_PUBLIC_IP}:21"
    )


def test_a_refused_config_registers_no_resource() -> None:
    with pytest.raises(PlanError) as caught:
        plan(passivePortStart=30000, passivePortEnd=30005, maxClients=10)
    assert caught.value.registered == 0
    assert "passivePortStart..passivePortEnd" in str(caught.value)


# -- the component alone, pulumi unit-test style --------------------------------------------------


@pytest.fixture
def mocked() -> None:
    pulumi.runtime.settings.ROOT.set(None)
    pulumi.runtime.set_mocks(Mocks(), project="ftpstack", stack="unit", preview=False)


@pulumi.runtime.test  # type: ignore[untyped-decorator]
def test_component_outputs_resolve(mocked: None) -> pulumi.Output[None]:
    server = FtpServer("unit", FtpServerArgs(settings(dnsLabel="unit-ftp")))

    def check(values: list[Any]) -> None:
        endpoint, ip, port, passive, instances = values
        assert endpoint == "ftp://unit-ftp.westeurope.cloudapp.azure.com:21"
        assert ip == MOCK_PUBLIC_IP and port == 21 and passive == "50000-50099"
        assert [i["passivePorts"] for i in instances] == ["50000-50099"]

    return pulumi.Output.all(
        server.ftp_endpoint,
        server.public_ip,
        server.control_port,
        server.passive_port_range,
        server.instances,
    ).apply(check)


@pulumi.runtime.test  # type: ignore[untyped-decorator]
def test_two_components_do_not_collide(mocked: None) -> pulumi.Output[None]:
    a = FtpServer("a", FtpServerArgs(settings()))
    b = FtpServer("b", FtpServerArgs(settings()))

    def check(names: list[str]) -> None:
        assert names[0] != names[1]

    return pulumi.Output.all(a.vm_name, b.vm_name).apply(check)


# -- existing networks -------------------------------------------------------------------------

ZONE_ID = (
    "/subscriptions/s/resourceGroups/hub/providers/Microsoft.Network/privateDnsZones/"
    "privatelink.file.core.windows.net"
)


def test_an_existing_private_dns_zone_is_used_instead_of_one_of_its_own() -> None:
    """Hub-and-spoke: the hub's zone answers for every spoke, and a VNet may be linked to only
    one zone of a name; the endpoint registers in the given zone, nothing else is created."""
    own = plan("prod")
    assert own.find(d.PRIVATE_ZONE) and own.find(d.VNET_LINK)
    hub = plan("prod", privateDnsZoneId=ZONE_ID)
    assert not hub.find(d.PRIVATE_ZONE) and not hub.find(d.VNET_LINK)
    (group,) = hub.find(d.ZONE_GROUP)
    assert group.raw_inputs["privateDnsZoneConfigs"][0]["privateDnsZoneId"] == ZONE_ID


def test_a_shared_resource_group_gets_a_load_balancer_name_of_its_stack() -> None:
    """Two stacks in one existing resource group: their load balancers must not collide; a
    stack in a group of its own keeps the name it always had."""
    (own,) = plan("prod").find(d.LOAD_BALANCER)
    assert own.inputs["loadBalancerName"] == "ftp-lb"
    shared = plan("prod", useExistingResourceGroup=True, resourceGroupName="shared-rg")
    (lb,) = shared.find(d.LOAD_BALANCER)
    assert lb.inputs["loadBalancerName"] == "ftp-prod-lb"
    ((_, written),) = view(shared).deployed_load_balancers()
    assert written["name"] == "ftp-prod-lb", "both writers name the same load balancer"
