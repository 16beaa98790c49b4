"""The one vocabulary for what a plan declares: resource types, NSG rules and their sources, what
counts as the Internet, ports, load-balancer rules and NAT rules, the live configuration, the
outputs by their constants. The plan's text, the diff, the ARM check, the local Azure model and
the tests all read a plan through this module.

It works on the plan's JSON form (`Plan.to_json()`, or `make plan ARGS=--json`): resources as
`{"type", "name", "parent", "inputs", "options", "dependencies", "id"}`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ftpstack import outputs

VM = "azure-native:compute:VirtualMachine"
DISK = "azure-native:compute:Disk"
RUN_COMMAND = "azure-native:compute:VirtualMachineRunCommandByVirtualMachine"
NIC = "azure-native:network:NetworkInterface"
NSG = "azure-native:network:NetworkSecurityGroup"
SECURITY_RULE = "azure-native:network:SecurityRule"
PUBLIC_IP = "azure-native:network:PublicIPAddress"
LOAD_BALANCER = "azure-native:network:LoadBalancer"
NAT_RULE = "azure-native:network:InboundNatRule"
VNET = "azure-native:network:VirtualNetwork"
SUBNET = "azure-native:network:Subnet"
RESOURCE_GROUP = "azure-native:resources:ResourceGroup"
STORAGE_ACCOUNT = "azure-native:storage:StorageAccount"
FILE_SHARE = "azure-native:storage:FileShare"
PRIVATE_ENDPOINT = "azure-native:network:PrivateEndpoint"
PRIVATE_ZONE = "azure-native:privatedns:PrivateZone"
VNET_LINK = "azure-native:privatedns:VirtualNetworkLink"
ZONE_GROUP = "azure-native:network:PrivateDnsZoneGroup"
DEPLOYMENT = "azure-native:resources:Deployment"
# An ARM template's resource type for a load balancer (what a deployment writes).
ARM_LOAD_BALANCER = "Microsoft.Network/loadBalancers"
LOCAL_COMMAND = "command:local:Command"
# The program's two commands on the deploying machine, by their names' ends.
SMOKE_CHECK_SUFFIX = "-smoke-check"
IDENTITY_SUFFIX = "-identity"
REMOTE_CHECK = "command:remote:Command"
COMPONENT = "ftpstack:azure:FtpServer"
# The operations of a stack (logs, alerts, backups: `ftpstack.operations`).
WORKSPACE = "azure-native:operationalinsights:Workspace"
TABLE = "azure-native:operationalinsights:Table"
COLLECTION_RULE = "azure-native:monitor:DataCollectionRule"
COLLECTION_ASSOCIATION = "azure-native:monitor:DataCollectionRuleAssociation"
VM_EXTENSION = "azure-native:compute:VirtualMachineExtension"
ACTION_GROUP = "azure-native:monitor:ActionGroup"
METRIC_ALERT = "azure-native:monitor:MetricAlert"
LOG_ALERT = "azure-native:monitor:ScheduledQueryRule"
ACTIVITY_ALERT = "azure-native:monitor:ActivityLogAlert"
BACKUP_VAULT = "azure-native:dataprotection:BackupVault"
BACKUP_POLICY = "azure-native:dataprotection:BackupPolicy"
BACKUP_INSTANCE = "azure-native:dataprotection:BackupInstance"
ROLE_ASSIGNMENT = "azure-native:authorization:RoleAssignment"
ROLE_DEFINITION = "azure-native:authorization:RoleDefinition"
WORKFLOW = "azure-native:logic:Workflow"
ALERTS = (METRIC_ALERT, LOG_ALERT, ACTIVITY_ALERT)
OPERATIONS = frozenset(
    {
        WORKSPACE,
        TABLE,
        COLLECTION_RULE,
        COLLECTION_ASSOCIATION,
        VM_EXTENSION,
        ACTION_GROUP,
        *ALERTS,
        BACKUP_VAULT,
        BACKUP_POLICY,
        BACKUP_INSTANCE,
        ROLE_ASSIGNMENT,
        ROLE_DEFINITION,
        WORKFLOW,
    }
)

# Sources that mean "anyone on the Internet" in an NSG rule (compared case-insensitively).
INTERNET_SOURCES = frozenset({"*", "internet", "any", "0.0.0.0/0", "::/0"})
# A CIDR broader than this is the Internet too (0.0.0.0/1 + 128.0.0.0/1 is everyone).
BROADEST_SPECIFIC_PREFIX = 8
# Azure's service tag for the load balancer's probes.
PROBE_SOURCE = "AzureLoadBalancer"
# An application security group as a rule's source, as this vocabulary writes it.
ASG_SOURCE = "asg:"

Resource = dict[str, Any]
PortRange = tuple[int, int]


def is_internet(source: str) -> bool:
    """True when an NSG source lets in anyone on the Internet (not a listed network)."""
    text = source.strip()
    if text.lower() in INTERNET_SOURCES:
        return True
    try:
        return ipaddress.ip_network(text, strict=False).prefixlen < BROADEST_SPECIFIC_PREFIX
    except ValueError:
        return False


def parse_ports(spec: str) -> PortRange | None:
    """ "50000-50099" -> (50000, 50099); "21" -> (21, 21); "*" -> None (every port)."""
    if spec in ("*", ""):
        return None
    first, _, last = spec.partition("-")
    return int(first), int(last or first)


@dataclass(frozen=True)
class SecurityRule:
    name: str
    priority: int
    direction: str
    access: str
    ports: PortRange | None
    sources: tuple[str, ...]  # CIDRs, service tags, or "asg:<name>" for a security group
    nsg: str = ""  # the NSG (its name in Azure) that holds it

    @classmethod
    def from_inputs(cls, inputs: Mapping[str, Any], nsg: str = "") -> SecurityRule:
        groups = [
            f"{ASG_SOURCE}{str(g.get('id', '')).rsplit('/', 1)[-1]}"
            for g in inputs.get("sourceApplicationSecurityGroups") or []
        ]
        sources = (
            inputs.get("sourceAddressPrefixes")
            or groups
            or [inputs.get("sourceAddressPrefix", "*")]
        )
        return cls(
            name=str(inputs.get("securityRuleName") or inputs.get("name")),
            priority=int(inputs["priority"]),
            direction=str(inputs.get("direction", "Inbound")),
            access=str(inputs["access"]),
            ports=parse_ports(str(inputs.get("destinationPortRange", "*"))),
            sources=tuple(str(s) for s in sources),
            nsg=nsg or str(inputs.get("networkSecurityGroupName", "")),
        )

    @property
    def allows(self) -> bool:
        return self.access == "Allow" and self.direction == "Inbound"

    @property
    def from_internet(self) -> bool:
        return any(is_internet(s) for s in self.sources)

    @property
    def port_text(self) -> str:
        if self.ports is None:
            return "*"
        first, last = self.ports
        return str(first) if first == last else f"{first}-{last}"


@dataclass(frozen=True)
class NatRule:
    name: str
    frontend_port: int
    backend_port: int
    pool: str


class Declared:
    """A plan's resources and outputs, with the questions every tool asks of them."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        self.resources: list[Resource] = list(document.get("resources", []))
        self.outputs: dict[str, Any] = dict(document.get("outputs", {}))

    def of(self, type_: str) -> list[Resource]:
        return [r for r in self.resources if r["type"] == type_]

    def one(self, type_: str) -> Resource:
        found = self.of(type_)
        if len(found) != 1:
            raise LookupError(f"{len(found)} resources of type {type_}, expected one")
        return found[0]

    def by_name(self, name: str) -> Resource:
        return next(r for r in self.resources if r["name"] == name)

    def security_rules(self, nsgs: set[str] | None = None) -> list[SecurityRule]:
        """Every NSG rule, inline or separate, in priority order (only those of `nsgs`, by the
        NSGs' names in Azure, when given)."""
        rules = [SecurityRule.from_inputs(r["inputs"]) for r in self.of(SECURITY_RULE)]
        for nsg in self.of(NSG):
            name = str(nsg["inputs"].get("networkSecurityGroupName") or nsg["name"])
            rules += [
                SecurityRule.from_inputs(x, name) for x in nsg["inputs"].get("securityRules", [])
            ]
        if nsgs is not None:
            rules = [r for r in rules if r.nsg in nsgs]
        return sorted(rules, key=lambda rule: (rule.direction, rule.priority))

    def server_nsgs(self) -> set[str]:
        """The NSGs on the servers' NICs (by name in Azure): what reaches the FTP servers."""
        ids = {str((nic["inputs"].get("networkSecurityGroup") or {}).get("id", "")).lower()
               for nic in self.of(NIC)}  # fmt: skip
        return {
            str(nsg["inputs"].get("networkSecurityGroupName") or nsg["name"])
            for nsg in self.of(NSG)
            if str(nsg.get("id", "")).lower() in ids
        }

    def server_rules(self) -> list[SecurityRule]:
        """The rules between the clients and the FTP servers (their NICs' NSG)."""
        return self.security_rules(self.server_nsgs())

    def open_to_internet(self) -> list[SecurityRule]:
        return [r for r in self.security_rules() if r.allows and r.from_internet]

    def deployed_load_balancers(self) -> list[tuple[Resource, dict[str, Any]]]:
        """(deployment, the load balancer its template writes) for every ARM deployment that
        writes one; the template's form nests each child's settings under "properties"."""
        found = []
        for deployment in self.of(DEPLOYMENT):
            template = (deployment["inputs"].get("properties") or {}).get("template") or {}
            found += [
                (deployment, item)
                for item in template.get("resources", [])
                if str(item.get("type", "")).lower() == ARM_LOAD_BALANCER.lower()
            ]
        return found

    def nat_rule_inputs(self) -> list[tuple[str, Mapping[str, Any]]]:
        """(the resource that writes it, its settings) of every inbound NAT rule, wherever it is
        declared: a resource of its own, inline in a load balancer, or in a deployment's
        template."""
        found: list[tuple[str, Mapping[str, Any]]] = [
            (
                rule["name"],
                {"name": rule["inputs"].get("inboundNatRuleName", rule["name"]), **rule["inputs"]},
            )
            for rule in self.of(NAT_RULE)
        ]
        for lb in self.of(LOAD_BALANCER):
            found += [(lb["name"], x) for x in lb["inputs"].get("inboundNatRules") or []]
        for deployment, lb_ in self.deployed_load_balancers():
            for x in (lb_.get("properties") or {}).get("inboundNatRules") or []:
                found.append(
                    (deployment["name"], {"name": x.get("name"), **x.get("properties", {})})
                )
        return found

    def nat_rules(self) -> list[NatRule]:
        out = []
        for _, i in self.nat_rule_inputs():
            pool = str((i.get("backendAddressPool") or {}).get("id", "")).rsplit("/", 1)[-1]
            out.append(
                NatRule(
                    str(i.get("name")),
                    int(i.get("frontendPortRangeStart") or i["frontendPort"]),
                    int(i["backendPort"]),
                    pool,
                )
            )
        return sorted(out, key=lambda n: n.frontend_port)

    def balanced_ports(self) -> list[int]:
        return [
            int(rule["frontendPort"])
            for lb in self.of(LOAD_BALANCER)
            for rule in lb["inputs"].get("loadBalancingRules", [])
        ]

    @property
    def public_ip(self) -> str:
        return str(self.outputs[outputs.PUBLIC_IP])

    @property
    def passive_range(self) -> range:
        first, last = (int(p) for p in str(self.outputs[outputs.PASSIVE_PORT_RANGE]).split("-"))
        return range(first, last + 1)

    def local_command(self, suffix: str) -> Resource | None:
        """The program's command on the deploying machine whose name ends with `suffix`."""
        return next((r for r in self.of(LOCAL_COMMAND) if r["name"].endswith(suffix)), None)

    def configure_steps(self) -> list[Resource]:
        return [r for r in self.of(RUN_COMMAND) if r["name"].endswith("-configure")]

    def children(self, parent: str) -> Iterator[Resource]:
        return (r for r in self.resources if r.get("parent") == parent)
