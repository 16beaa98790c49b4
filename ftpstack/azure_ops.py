"""What Azure allows and names for the operations of a stack (logs, alerts, backups), each with
its source: the ranges the settings check, the built-in roles the backup vault needs, the agent
extension, the metrics the alerts watch. One module owns these facts; the settings, the component,
the ARM check and the policy pack read them here (the pack keeps its own copy of the few it needs:
it imports nothing from `ftpstack`).
"""

from __future__ import annotations

import re

from ftpstack.azure_rules import DOCS, Range

# -- logs ---------------------------------------------------------------------------------------
# "retention_in_days - ... Possible values are either 7 (Free Tier only) or range between 30 and
# 730" (the PerGB2018 tier ftpstack declares); Azure Monitor: "Configure data retention": the
# workspace's default analytics retention is up to two years.
RETENTION_PAGE = f"{DOCS}/azure-monitor/logs/data-retention-configure"
LOG_RETENTION_DAYS = Range(30, 730, RETENTION_PAGE)
WORKSPACE_SKU = "PerGB2018"
_GROUP = r"/subscriptions/[^/\s]+/resourceGroups/[^/\s]+/providers/"
WORKSPACE_ID = re.compile(
    _GROUP + r"Microsoft\.OperationalInsights/workspaces/([^/\s]+)", re.IGNORECASE
)
# The Azure Monitor Agent for Linux ("Install and manage the Azure Monitor Agent": publisher
# Microsoft.Azure.Monitor, type AzureMonitorLinuxAgent); it signs in with the VM's managed
# identity, so a VM that ships logs has a system-assigned one.
AMA_PAGE = f"{DOCS}/azure-monitor/agents/azure-monitor-agent-manage"
AMA_PUBLISHER = "Microsoft.Azure.Monitor"
AMA_TYPE = "AzureMonitorLinuxAgent"
AMA_VERSION = "1.0"
# "Collect logs from a text or JSON file with Azure Monitor Agent": a custom table `<name>_CL`
# made before the DCR, a stream `Custom-<table>` declared in it, and a file pattern per source.
LOG_FILES_PAGE = f"{DOCS}/azure-monitor/vm/data-collection-log-json"

# -- alerts -------------------------------------------------------------------------------------
# Load balancer metrics ("Standard Load Balancer multi-dimensional metrics"): DipAvailability
# (Health Probe Status, per BackendIPAddress, 0-100 %). VMs: VmAvailabilityMetric (1 available,
# 0 not). Azure Files: FileCapacity per FileShare (bytes), on fileServices/default.
LB_METRICS_PAGE = f"{DOCS}/load-balancer/monitor-load-balancer-reference"
VM_METRICS_PAGE = f"{DOCS}/virtual-machines/monitor-vm-reference"
FILES_METRICS_PAGE = f"{DOCS}/storage/files/storage-files-monitoring-reference"
PROBE_METRIC = "DipAvailability"
PROBE_DIMENSION = "BackendIPAddress"
VM_METRIC = "VmAvailabilityMetric"
SHARE_METRIC = "FileCapacity"
SHARE_DIMENSION = "FileShare"
# Metric alerts: evaluation every PT1M-PT1H over windows of PT1M-P1D ("Create a metric alert
# rule", MetricAlert REST: evaluationFrequency, windowSize).
METRIC_ALERT_PAGE = "https://learn.microsoft.com/rest/api/monitor/metric-alerts/create-or-update"
ACTION_GROUP_SHORT_NAME = re.compile(r"^.{1,12}\Z")  # "groupShortName ... 12 characters"
ACTION_GROUP_PAGE = "https://learn.microsoft.com/rest/api/monitor/action-groups/create-or-update"
# Email receivers per action group: "up to 1,000 email actions in an action group".
EMAILS_PER_ACTION_GROUP = 1000
# A failed configuration step is a failed Run Command write in the activity log
# (treatFailureAsDeploymentFailure); an activity log alert on it ("Activity log alerts": an
# operationName and a status).
ACTIVITY_ALERT_PAGE = f"{DOCS}/azure-monitor/alerts/alerts-types#activity-log-alerts"
RUN_COMMAND_WRITE = "Microsoft.Compute/virtualMachines/runCommands/write"
# The share alert fires at this share of its provisioned size.
SHARE_FULL_PERCENT = 80

# -- backups ------------------------------------------------------------------------------------
# Azure Disk Backup (operational tier, incremental snapshots): "Backup policy limits the total
# backups to 180", one a day here; the vault's managed identity needs Disk Backup Reader on the
# disk and Disk Snapshot Contributor on the snapshot resource group, and Disk Restore Operator on
# the group a restore creates disks in (disk-backup-support-matrix, backup-managed-disks).
DISK_BACKUP_PAGE = f"{DOCS}/backup/disk-backup-support-matrix"
BACKUP_RETENTION_DAYS = Range(1, 180, DISK_BACKUP_PAGE)
DISK_BACKUP_READER = "3e5e47e6-65f7-47ef-90b5-e5dd4d455f24"
DISK_SNAPSHOT_CONTRIBUTOR = "7efff54f-a5b4-42b5-a1c5-5411624893ce"
DISK_RESTORE_OPERATOR = "b50d9833-a0cb-478e-945f-707fcc997c13"
DISK_DATASOURCE_TYPE = "Microsoft.Compute/disks"
DISK_POLICY_DATASOURCE = "Microsoft.Compute/disks"
# Azure Files NFS shares: "Azure Backup currently doesn't support file shares with the NFS
# (Network File System) protocol" (azure-file-share-support-matrix, MicrosoftDocs/azure-docs,
# ms.date 02/17/2026). NFS share snapshots are supported by Azure Files itself
# ("storage-files-how-to-mount-nfs-shares" / "NFS file share snapshots"), at most 200 per share;
# ftpstack takes one a day from a Logic App with a managed identity, given a custom role with the
# three share actions its ARM calls need ("Azure permissions for Storage", the operations of
# Microsoft.Storage/storageAccounts/fileServices/shares; "Azure custom roles": a role's name is
# unique in the tenant, its assignable scopes a resource group at the narrowest). Taking a
# snapshot is a write of the share (`PUT …/shares/<name>?$expand=snapshots`), listing them a
# read, deleting an expired one a delete (with its `x-ms-snapshot` header). The role cannot tell
# a snapshot from the share; Storage Account Contributor could also list the account's keys and
# change its network rules.
FILES_BACKUP_PAGE = f"{DOCS}/backup/azure-file-share-support-matrix"
SHARE_SNAPSHOT_PAGE = f"{DOCS}/storage/files/storage-snapshots-files"
SNAPSHOTS_PER_SHARE = 200
SHARE_SNAPSHOT_ACTIONS = (
    "Microsoft.Storage/storageAccounts/fileServices/shares/read",
    "Microsoft.Storage/storageAccounts/fileServices/shares/write",
    "Microsoft.Storage/storageAccounts/fileServices/shares/delete",
)
CUSTOM_ROLES_PAGE = f"{DOCS}/role-based-access-control/custom-roles"
STORAGE_API_VERSION = "2023-05-01"


def role_definition_id(subscription_id: str, role: str) -> str:
    return (
        f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{role}"
    )
