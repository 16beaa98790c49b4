"""Backups of the files, once a day, kept `backupRetentionDays` (`backups`).

- A data disk: Azure Backup's disk backup (a Backup vault, a policy of daily incremental snapshots
  in the operational tier, a backup instance per disk). The vault's managed identity gets the
  roles Azure Backup documents and no other: Disk Backup Reader on the disk, Disk Snapshot
  Contributor on the resource group the snapshots are kept in (the stack's), and Disk Restore
  Operator there for restores (`ftpstack.azure_ops` cites each).
- The NFS share: Azure Backup does not back up NFS shares (its support matrix, 2026-02), but
  Azure Files takes NFS share snapshots. A Logic App (Consumption) with its own managed identity
  takes one a day through ARM (`PUT …/shares/ftp?$expand=snapshots`) and deletes those older than
  the retention; its identity gets a role of the stack's own on the storage account that allows
  reading, writing and deleting its shares and nothing else (`ops.SHARE_SNAPSHOT_ACTIONS`).
  A snapshot is read-only and restored by copying from it (docs/operations.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import pulumi
from pulumi_azure_native import authorization, compute, dataprotection, logic, storage

from ftpstack import azure_ops as ops
from ftpstack.parts import Placement, located
from ftpstack.settings import Settings

SCHEDULE_START = "2026-01-01T02:00:00+00:00"  # daily at 02:00 UTC
OPERATIONAL = {"data_store_type": "OperationalStore", "object_type": "DataStoreInfoBase"}


def role(
    name: str,
    principal: pulumi.Input[str],
    role_id: str,
    scope: pulumi.Input[str],
    subscription: pulumi.Input[str],
    parent: pulumi.Resource,
) -> authorization.RoleAssignment:
    """`principal` gets the built-in role `role_id` on `scope`."""
    definition = pulumi.Output.from_input(subscription).apply(
        lambda sub: ops.role_definition_id(sub, role_id)
    )
    return assignment(name, principal, definition, scope, parent)


def assignment(
    name: str,
    principal: pulumi.Input[str],
    definition: pulumi.Input[str],
    scope: pulumi.Input[str],
    parent: pulumi.Resource,
) -> authorization.RoleAssignment:
    return authorization.RoleAssignment(
        name,
        principal_id=principal,
        principal_type="ServicePrincipal",
        role_definition_id=definition,
        scope=scope,
        opts=pulumi.ResourceOptions(parent=parent),
    )


def disk_policy(s: Settings) -> dict[str, Any]:
    """Daily incremental snapshots, each kept `backupRetentionDays`."""
    return {
        "object_type": "BackupPolicy",
        "datasource_types": [ops.DISK_POLICY_DATASOURCE],
        "policy_rules": [
            {
                "object_type": "AzureBackupRule",
                "name": "BackupDaily",
                "backup_parameters": {
                    "object_type": "AzureBackupParams",
                    "backup_type": "Incremental",
                },
                "data_store": OPERATIONAL,
                "trigger": {
                    "object_type": "ScheduleBasedTriggerContext",
                    "schedule": {
                        "repeating_time_intervals": [f"R/{SCHEDULE_START}/P1D"],
                        "time_zone": "UTC",
                    },
                    "tagging_criteria": [
                        {
                            "is_default": True,
                            "tag_info": {"tag_name": "Default"},
                            "tagging_priority": 99,
                        }
                    ],
                },
            },
            {
                "object_type": "AzureRetentionRule",
                "name": "Default",
                "is_default": True,
                "lifecycles": [
                    {
                        "delete_after": {
                            "object_type": "AbsoluteDeleteOption",
                            "duration": f"P{s.backup_retention_days}D",
                        },
                        "source_data_store": OPERATIONAL,
                        "target_data_store_copy_settings": [],
                    }
                ],
            },
        ],
    }


def disk_backups(
    name: str,
    s: Settings,
    where: Placement,
    disks: Sequence[tuple[str, compute.Disk]],
    rg_id: pulumi.Input[str],
    subscription: pulumi.Input[str],
    parent: pulumi.Resource,
) -> list[pulumi.Resource]:
    vault = dataprotection.BackupVault(
        f"{name}-backup-vault",
        resource_group_name=where.rg_name,
        location=s.location,
        identity={"type": "SystemAssigned"},
        properties={
            "storage_settings": [{"datastore_type": "VaultStore", "type": "LocallyRedundant"}]
        },
        tags=s.tags,
        opts=located(parent),
    )
    principal = vault.identity.apply(lambda i: (i.principal_id or "") if i else "")
    policy = dataprotection.BackupPolicy(
        f"{name}-backup-policy",
        resource_group_name=where.rg_name,
        vault_name=vault.name,
        backup_policy_name="ftpstack-daily",
        properties=cast(Any, disk_policy(s)),  # a dict of ARM's shape, typed by the SDK
        opts=pulumi.ResourceOptions(parent=vault),
    )
    # Snapshots are kept, and restores create disks, in the stack's resource group.
    group_roles = [
        role(f"{name}-backup-{what}", principal, role_id, rg_id, subscription, vault)
        for what, role_id in (
            ("snapshots", ops.DISK_SNAPSHOT_CONTRIBUTOR),
            ("restores", ops.DISK_RESTORE_OPERATOR),
        )
    ]
    made: list[pulumi.Resource] = [vault, policy, *group_roles]
    for suffix, disk in disks:  # suffix: "" or "-1", as the instance's own resources
        reader = role(
            f"{name}-backup-reader{suffix}",
            principal,
            ops.DISK_BACKUP_READER,
            disk.id,
            subscription,
            vault,
        )
        made += [
            reader,
            disk_instance(
                name, suffix, s, where, vault, policy, disk, rg_id, [reader, *group_roles]
            ),
        ]
    return made


def disk_instance(
    name: str,
    suffix: str,
    s: Settings,
    where: Placement,
    vault: dataprotection.BackupVault,
    policy: dataprotection.BackupPolicy,
    disk: compute.Disk,
    rg_id: pulumi.Input[str],
    roles: Sequence[pulumi.Resource],
) -> dataprotection.BackupInstance:
    """One disk under the policy, its snapshots kept in the stack's resource group."""
    return dataprotection.BackupInstance(
        f"{name}-backup{suffix}",
        resource_group_name=where.rg_name,
        vault_name=vault.name,
        backup_instance_name=disk.name,
        properties={
            "object_type": "BackupInstance",
            "friendly_name": disk.name,
            "data_source_info": {
                "object_type": "Datasource",
                "datasource_type": ops.DISK_DATASOURCE_TYPE,
                "resource_id": disk.id,
                "resource_uri": disk.id,
                "resource_name": disk.name,
                "resource_type": ops.DISK_DATASOURCE_TYPE,
                "resource_location": s.location,
            },
            "policy_info": {
                "policy_id": policy.id,
                "policy_parameters": {
                    "data_store_parameters_list": [
                        {
                            "object_type": "AzureOperationalStoreParameters",
                            "data_store_type": "OperationalStore",
                            "resource_group_id": rg_id,
                        }
                    ]
                },
            },
        },
        tags=s.tags,
        # Azure checks the vault's roles when the instance is made ("role assignments are
        # required by the Backup vault's managed identity").
        opts=pulumi.ResourceOptions(parent=vault, depends_on=[*roles, disk]),
    )


def snapshot_workflow(share_id: str, retention_days: int) -> dict[str, Any]:
    """A Logic App definition: daily, snapshot the share, then delete its snapshots older than
    the retention (each a DELETE of the share with the snapshot's `x-ms-snapshot` header)."""
    base = f"https://management.azure.com{share_id}"
    version = f"api-version={ops.STORAGE_API_VERSION}"
    auth = {"type": "ManagedServiceIdentity", "audience": "https://management.azure.com/"}
    account = share_id.rsplit("/fileServices/", 1)[0]
    listing = f"https://management.azure.com{account}/fileServices/default/shares?$expand=snapshots&{version}"
    old = (
        f"@and(equals(item()?['name'], '{share_id.rsplit('/', 1)[1]}'), "
        "not(empty(item()?['properties']?['snapshotTime'])), "
        f"less(item()?['properties']?['snapshotTime'], addDays(utcNow(), -{retention_days})))"
    )
    return {
        "$schema": "https://schema.management.azure.com/providers/Microsoft.Logic/schemas/"
        "2016-06-01/workflowdefinition.json#",
        "contentVersion": "1.0.0.0",
        "triggers": {
            "daily": {
                "type": "Recurrence",
                "recurrence": {"frequency": "Day", "interval": 1, "startTime": SCHEDULE_START},
            }
        },
        "actions": {
            "snapshot": {
                "type": "Http",
                "inputs": {
                    "method": "PUT",
                    "uri": f"{base}?$expand=snapshots&{version}",
                    "body": {},
                    "authentication": auth,
                },
            },
            "list": {
                "type": "Http",
                "runAfter": {"snapshot": ["Succeeded"]},
                "inputs": {"method": "GET", "uri": listing, "authentication": auth},
            },
            "expired": {
                "type": "Query",
                "runAfter": {"list": ["Succeeded"]},
                "inputs": {"from": "@body('list')?['value']", "where": old},
            },
            "delete": {
                "type": "Foreach",
                "runAfter": {"expired": ["Succeeded"]},
                "foreach": "@body('expired')",
                "actions": {"delete-one": _delete_snapshot(f"{base}?{version}", auth)},
            },
        },
    }


def _delete_snapshot(uri: str, auth: dict[str, str]) -> dict[str, Any]:
    """ARM deletes a share's snapshot as the share, with the snapshot's time as a header."""
    return {
        "type": "Http",
        "inputs": {
            "method": "DELETE",
            "uri": uri,
            "headers": {"x-ms-snapshot": "@{item()?['properties']?['snapshotTime']}"},
            "authentication": auth,
        },
    }


def share_snapshots(
    name: str,
    s: Settings,
    where: Placement,
    account: storage.StorageAccount,
    share: storage.FileShare,
    rg_id: pulumi.Input[str],
    parent: pulumi.Resource,
) -> list[pulumi.Resource]:
    if s.backup_retention_days >= ops.SNAPSHOTS_PER_SHARE:
        raise ValueError("a share keeps at most 200 snapshots")  # the settings' range is below
    flow = logic.Workflow(
        f"{name}-share-snapshots",
        resource_group_name=where.rg_name,
        location=s.location,
        identity={"type": "SystemAssigned"},
        state="Enabled",
        definition=share.id.apply(lambda i: snapshot_workflow(i, s.backup_retention_days)),
        tags=s.tags,
        opts=located(parent),
    )
    principal = flow.identity.apply(lambda i: (i.principal_id or "") if i else "")
    # A role of the stack's own with the share actions the workflow calls and no other: no
    # built-in role is that narrow (Storage Account Contributor could also list the account's
    # keys and open its network rules).
    definition = authorization.RoleDefinition(
        f"{name}-share-snapshots-role-definition",
        # Unique in the tenant (Azure refuses a second role of the same name): the account's
        # name is globally unique.
        role_name=account.name.apply(lambda n: f"ftpstack share snapshots ({n})"),
        description="Take, list and delete the snapshots of ftpstack's file share.",
        role_type="CustomRole",
        permissions=[{"actions": list(ops.SHARE_SNAPSHOT_ACTIONS)}],
        assignable_scopes=[rg_id],
        scope=rg_id,
        opts=pulumi.ResourceOptions(parent=flow),
    )
    writer = assignment(f"{name}-share-snapshots-role", principal, definition.id, account.id, flow)
    return [flow, definition, writer]
