"""The operations guardrail of the ftpstack policy pack, as a plain function of plain resources: a
production stack has central logs, alerts that mail someone, and backups of its files, unless it
opted out of one explicitly (the component then tags each VM `ftpstack:opted-out` with what it
switched off, e.g. `alerts`; `none` otherwise).

What counts, per FtpServer component:
- logs: a data collection rule writing to a Log Analytics workspace, and on every VM the Azure
  Monitor Agent (extension type AzureMonitorLinuxAgent) and an association with a rule;
- alerts: an action group with at least one e-mail receiver, and metric alert rules sending to an
  action group;
- backups: a backup instance for every managed data disk; a share-snapshot workflow for an NFS
  share (Azure Backup does not back up NFS shares). A stack with neither has no files to back up
  outside the OS disk, which other warnings cover.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from ftpstack_guardrails import DEFAULT_ENVIRONMENT_TAG, DEFAULT_PRODUCTION_VALUES, is_production
from ftpstack_values import VM, Resource, ftp_servers, tags

TAG_OPTED_OUT = "ftpstack:opted-out"
OPERATIONS = ("logs", "alerts", "backups")
WORKSPACE = "azure-native:operationalinsights:Workspace"
COLLECTION_RULE = "azure-native:monitor:DataCollectionRule"
COLLECTION_ASSOCIATION = "azure-native:monitor:DataCollectionRuleAssociation"
VM_EXTENSION = "azure-native:compute:VirtualMachineExtension"
ACTION_GROUP = "azure-native:monitor:ActionGroup"
METRIC_ALERT = "azure-native:monitor:MetricAlert"
BACKUP_INSTANCE = "azure-native:dataprotection:BackupInstance"
WORKFLOW = "azure-native:logic:Workflow"
DISK = "azure-native:compute:Disk"
FILE_SHARE = "azure-native:storage:FileShare"
AGENT_TYPE = "AzureMonitorLinuxAgent"


def opted_out(vms: Sequence[Resource]) -> set[str]:
    """What every VM of a server says it opted out of (an opt-out holds only if all say it)."""
    said = [set(str(tags(vm).get(TAG_OPTED_OUT, "")).split(",")) for vm in vms]
    return set.intersection(*said) & set(OPERATIONS) if said else set()


def _of(group: Iterable[Resource], type_: str) -> list[Resource]:
    return [r for r in group if r["type"] == type_]


def missing(group: Sequence[Resource]) -> dict[str, str]:
    """What of each operation a server lacks, by operation ("" when it has it)."""
    vms = _of(group, VM)
    agents = [e for e in _of(group, VM_EXTENSION) if e["props"].get("type") == AGENT_TYPE]
    rules = _of(group, COLLECTION_RULE)
    to_workspace = any((r["props"].get("destinations") or {}).get("logAnalytics") for r in rules)
    logs = ""
    if not to_workspace:
        logs = "no data collection rule sends to a Log Analytics workspace"
    elif len(agents) < len(vms) or len(_of(group, COLLECTION_ASSOCIATION)) < len(vms):
        logs = (
            f"{len(agents)} Azure Monitor Agent(s) and {len(_of(group, COLLECTION_ASSOCIATION))} "
            f"rule association(s) for {len(vms)} VM(s)"
        )
    mailing = [g for g in _of(group, ACTION_GROUP) if g["props"].get("emailReceivers")]
    alerts = ""
    if not mailing:
        alerts = "no action group mails anyone (alertEmails)"
    elif not any(a["props"].get("actions") for a in _of(group, METRIC_ALERT)):
        alerts = "no metric alert rule sends to an action group"
    backups = ""
    disks, instances = _of(group, DISK), _of(group, BACKUP_INSTANCE)
    if len(instances) < len(disks):
        backups = f"{len(instances)} backup instance(s) for {len(disks)} data disk(s)"
    elif _of(group, FILE_SHARE) and not _of(group, WORKFLOW):
        backups = "the NFS share has no snapshot workflow"
    return {"logs": logs, "alerts": alerts, "backups": backups}


def operations_violations(
    resources: Sequence[Resource],
    stack_tags: Mapping[str, str],
    key: str = DEFAULT_ENVIRONMENT_TAG,
    values: Iterable[str] = DEFAULT_PRODUCTION_VALUES,
) -> list[str]:
    if not is_production(resources, stack_tags, key, values):
        return []
    violations = []
    for server, group in ftp_servers(resources).items():
        vms = _of(group, VM)
        if not vms:
            continue
        out = opted_out(vms)
        for operation, lack in missing(group).items():
            if lack and operation not in out:
                violations.append(
                    f"{server}: a production stack ({key} tag) without {operation}: {lack}; "
                    f"turn {operation} on, or opt out explicitly (ftpstack:{operation}: off, "
                    f"which tags the VMs {TAG_OPTED_OUT}={operation})"
                )
    return violations
