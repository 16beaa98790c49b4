"""Pulumi mocks that answer like Azure Resource Manager, and a monitor that records what the
program registers, as the engine would receive it.

Ids are real ARM ids (`/subscriptions/…/resourceGroups/…/providers/Microsoft.Network/…`), built
from the resource's own name inputs the way Azure builds them, so that an id the program spells
out by hand looks exactly like the one Azure returns — and the ARM check (`armcheck`) can tell a
reference that flows from a resource (a dependency) from one built from strings (none).
Values Azure computes (addresses, FQDNs) come from documentation ranges.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.runtime import mocks as pulumi_mocks

from ftpstack.offline.declared import IDENTITY_SUFFIX, LOCAL_COMMAND

MOCK_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
MOCK_PUBLIC_IP = "198.51.100.10"
MOCK_PRIVATE_PREFIX = "10.20.1."
# The marker Pulumi's wire format puts on secret values (sdk/go/common/resource/properties.go).
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
SIG_KEY = "4dabf18193072939515e22adb298388d"

# type token -> (ARM provider path with {input} placeholders for the parent names, name input)
ARM_PATHS: dict[str, tuple[str, str]] = {
    "azure-native:network:VirtualNetwork": (
        "Microsoft.Network/virtualNetworks/{name}",
        "virtualNetworkName",
    ),
    "azure-native:network:Subnet": (
        "Microsoft.Network/virtualNetworks/{virtualNetworkName}/subnets/{name}",
        "subnetName",
    ),
    "azure-native:network:NetworkSecurityGroup": (
        "Microsoft.Network/networkSecurityGroups/{name}",
        "networkSecurityGroupName",
    ),
    "azure-native:network:SecurityRule": (
        "Microsoft.Network/networkSecurityGroups/{networkSecurityGroupName}/securityRules/{name}",
        "securityRuleName",
    ),
    "azure-native:network:PublicIPAddress": (
        "Microsoft.Network/publicIPAddresses/{name}",
        "publicIpAddressName",
    ),
    "azure-native:network:NetworkInterface": (
        "Microsoft.Network/networkInterfaces/{name}",
        "networkInterfaceName",
    ),
    "azure-native:network:LoadBalancer": (
        "Microsoft.Network/loadBalancers/{name}",
        "loadBalancerName",
    ),
    "azure-native:network:InboundNatRule": (
        "Microsoft.Network/loadBalancers/{loadBalancerName}/inboundNatRules/{name}",
        "inboundNatRuleName",
    ),
    "azure-native:network:PrivateEndpoint": (
        "Microsoft.Network/privateEndpoints/{name}",
        "privateEndpointName",
    ),
    "azure-native:network:PrivateDnsZoneGroup": (
        "Microsoft.Network/privateEndpoints/{privateEndpointName}/privateDnsZoneGroups/{name}",
        "privateDnsZoneGroupName",
    ),
    "azure-native:privatedns:PrivateZone": (
        "Microsoft.Network/privateDnsZones/{name}",
        "privateZoneName",
    ),
    "azure-native:privatedns:VirtualNetworkLink": (
        "Microsoft.Network/privateDnsZones/{privateZoneName}/virtualNetworkLinks/{name}",
        "virtualNetworkLinkName",
    ),
    "azure-native:compute:VirtualMachine": ("Microsoft.Compute/virtualMachines/{name}", "vmName"),
    "azure-native:compute:Disk": ("Microsoft.Compute/disks/{name}", "diskName"),
    "azure-native:compute:VirtualMachineRunCommandByVirtualMachine": (
        "Microsoft.Compute/virtualMachines/{vmName}/runCommands/{name}",
        "runCommandName",
    ),
    "azure-native:storage:StorageAccount": (
        "Microsoft.Storage/storageAccounts/{name}",
        "accountName",
    ),
    "azure-native:storage:FileShare": (
        "Microsoft.Storage/storageAccounts/{accountName}/fileServices/default/shares/{name}",
        "shareName",
    ),
    "azure-native:operationalinsights:Workspace": (
        "Microsoft.OperationalInsights/workspaces/{name}",
        "workspaceName",
    ),
    "azure-native:operationalinsights:Table": (
        "Microsoft.OperationalInsights/workspaces/{workspaceName}/tables/{name}",
        "tableName",
    ),
    "azure-native:monitor:DataCollectionRule": (
        "Microsoft.Insights/dataCollectionRules/{name}",
        "dataCollectionRuleName",
    ),
    "azure-native:monitor:ActionGroup": (
        "Microsoft.Insights/actionGroups/{name}",
        "actionGroupName",
    ),
    "azure-native:monitor:MetricAlert": ("Microsoft.Insights/metricAlerts/{name}", "ruleName"),
    "azure-native:monitor:ScheduledQueryRule": (
        "Microsoft.Insights/scheduledQueryRules/{name}",
        "ruleName",
    ),
    "azure-native:monitor:ActivityLogAlert": (
        "Microsoft.Insights/activityLogAlerts/{name}",
        "activityLogAlertName",
    ),
    "azure-native:compute:VirtualMachineExtension": (
        "Microsoft.Compute/virtualMachines/{vmName}/extensions/{name}",
        "vmExtensionName",
    ),
    "azure-native:dataprotection:BackupVault": (
        "Microsoft.DataProtection/backupVaults/{name}",
        "vaultName",
    ),
    "azure-native:dataprotection:BackupPolicy": (
        "Microsoft.DataProtection/backupVaults/{vaultName}/backupPolicies/{name}",
        "backupPolicyName",
    ),
    "azure-native:dataprotection:BackupInstance": (
        "Microsoft.DataProtection/backupVaults/{vaultName}/backupInstances/{name}",
        "backupInstanceName",
    ),
    "azure-native:logic:Workflow": ("Microsoft.Logic/workflows/{name}", "workflowName"),
}
# Types whose id ARM builds under another resource's id (a scope) rather than a group.
SCOPED = {
    "azure-native:monitor:DataCollectionRuleAssociation": (
        "resourceUri",
        "Microsoft.Insights/dataCollectionRuleAssociations",
        "associationName",
    ),
    "azure-native:authorization:RoleAssignment": (
        "scope",
        "Microsoft.Authorization/roleAssignments",
        "roleAssignmentName",
    ),
    "azure-native:authorization:RoleDefinition": (
        "scope",
        "Microsoft.Authorization/roleDefinitions",
        "roleDefinitionId",
    ),
}
RESOURCE_GROUP = "azure-native:resources:ResourceGroup"
RESOURCE_GROUP_NAME = "resourceGroupName"


def arm_name(type_: str, name: str, inputs: dict[str, Any]) -> str:
    """The resource's name in Azure: its name input, else the Pulumi name (the real provider
    adds a random suffix; the mocks keep names predictable)."""
    name_input = (
        RESOURCE_GROUP_NAME if type_ == RESOURCE_GROUP else ARM_PATHS.get(type_, ("", ""))[1]
    )
    value = inputs.get(name_input) if name_input else None
    return str(value) if value else name


def arm_id(type_: str, name: str, inputs: dict[str, Any]) -> str:
    """The id Azure gives this resource."""
    own = arm_name(type_, name, inputs)
    if type_ in SCOPED:
        scope, path, name_input = SCOPED[type_]
        return f"{inputs.get(scope, '')}/providers/{path}/{inputs.get(name_input) or name}"
    if type_ == RESOURCE_GROUP:
        return f"/subscriptions/{MOCK_SUBSCRIPTION}/resourceGroups/{own}"
    _, module, kind = type_.split(":")
    path = ARM_PATHS.get(type_, (f"Mock.{module}/{kind}/{{name}}", ""))[0]
    try:
        parents = {k: str(v) for k, v in inputs.items() if k != "name"}
        provider_path = path.format(**{**parents, "name": own})
    except KeyError:  # a parent name not given (yet): still unique, never a real id
        provider_path = f"Mock.{module}/{kind}/{own}"
    group = inputs.get(RESOURCE_GROUP_NAME, "mock-rg")
    return f"/subscriptions/{MOCK_SUBSCRIPTION}/resourceGroups/{group}/providers/{provider_path}"


class Mocks(pulumi.runtime.Mocks):
    """Echo the inputs, and add what Azure computes: ids, names, addresses, FQDNs — and what the
    deploying machine's identity command prints (a stand-in made from the stack's name)."""

    def __init__(self, stack: str = "dev") -> None:
        self.stack = stack

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        state = dict(args.inputs)
        state.setdefault("name", arm_name(args.typ, args.name, state))
        if args.typ == "azure-native:network:PublicIPAddress":
            state["ipAddress"] = MOCK_PUBLIC_IP
            label = (state.get("dnsSettings") or {}).get("domainNameLabel")
            if label:
                region = state.get("location", "westeurope")
                state["dnsSettings"] = {
                    "domainNameLabel": label,
                    "fqdn": f"{label}.{region}.cloudapp.azure.com",
                }
        if args.typ == "azure-native:network:NetworkInterface":
            # Azure gives the first free address from .4; the NICs register in any order, so the
            # address follows the instance's index in the NIC's name (ftp-nic, ftp-nic-1, ...),
            # or two plans of one stack would differ in the instances' addresses.
            tail = args.name.rsplit("-", 1)[-1]
            address = f"{MOCK_PRIVATE_PREFIX}{4 + (int(tail) if tail.isdigit() else 0)}"
            state["ipConfigurations"] = [
                {**c, "privateIPAddress": address} for c in state.get("ipConfigurations", [])
            ]
        if (state.get("identity") or {}).get("type") == "SystemAssigned":
            # Azure makes the identity: a principal id of its own per resource.
            principal = uuid.uuid5(uuid.NAMESPACE_URL, f"{self.stack}/{args.name}")
            state["identity"] = {
                **state["identity"],
                "principalId": str(principal),
                "tenantId": MOCK_SUBSCRIPTION,
            }
        if args.typ == "azure-native:operationalinsights:Workspace":
            state["customerId"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.stack}/workspace"))
        if args.typ == LOCAL_COMMAND and args.name.endswith(IDENTITY_SUFFIX):
            from ftpstack.offline.standins import identity

            state["stdout"] = identity(f"{self.stack}/{args.name}")
        return arm_id(args.typ, args.name, state), state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[Any]]:
        if args.token == "azure-native:authorization:getClientConfig":
            return {
                "subscriptionId": MOCK_SUBSCRIPTION,
                "tenantId": MOCK_SUBSCRIPTION,
                "clientId": MOCK_SUBSCRIPTION,
                "objectId": MOCK_SUBSCRIPTION,
            }, []
        return {}, []


@dataclass
class Registration:
    """One resource as the engine received it."""

    type: str
    name: str
    parent: str  # the parent's name ("" for the stack)
    custom: bool
    wire: dict[str, Any] = field(repr=False)  # inputs in the engine's wire form (secrets marked)
    dependencies: list[str]  # names of the resources it depends on (inputs and depends_on)
    options: dict[str, Any]


def name_of(urn: str) -> str:
    return urn.rsplit("::", 1)[-1] if urn else ""


class CapturingMonitor(pulumi_mocks.MockMonitor):
    """The mock monitor, recording each registration."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.captured: list[Registration] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC name)
        if request.type != "pulumi:pulumi:Stack":
            dependencies = {name_of(urn) for urn in request.dependencies}
            for deps in request.propertyDependencies.values():
                dependencies |= {name_of(urn) for urn in deps.urns}
            self.captured.append(
                Registration(
                    type=request.type,
                    name=request.name,
                    parent=name_of(request.parent),
                    custom=bool(request.custom),
                    wire=json_format.MessageToDict(request.object),
                    dependencies=sorted(dependencies),
                    options={
                        "replaceOnChanges": list(request.replaceOnChanges),
                        "ignoreChanges": list(request.ignoreChanges),
                        "deleteBeforeReplace": bool(request.deleteBeforeReplace),
                        "protect": bool(request.protect),
                        "dependsOn": sorted(name_of(urn) for urn in request.dependencies),
                    },
                )
            )
        return super().RegisterResource(request)


def walk(value: Any, secret: Any) -> Any:
    """Copy a wire value; a value carrying Pulumi's secret marker becomes `secret(inner)`.
    Whole-number floats (protobuf has no integers) become ints again."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            return secret(walk(value.get("value"), secret))
        return {k: walk(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [walk(v, secret) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
