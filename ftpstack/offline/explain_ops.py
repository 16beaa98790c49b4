"""`make diff`'s plain line for a changed resource of the operations (logs, alerts, backups):
what it does for the operator, and what its removal loses. `explain` calls `line` for these
types; `diff` adds `removal_warnings` to its loud lines."""

from __future__ import annotations

from typing import Any

from ftpstack.offline import declared as d
from ftpstack.offline.edges import Change

NO_DOWNTIME = "no downtime for FTP"
WHAT = {
    d.WORKSPACE: "the logs' Log Analytics workspace",
    d.TABLE: "log table",
    d.COLLECTION_RULE: "what the agents ship (transfer, login, ban and proftpd logs; disk space)",
    d.COLLECTION_ASSOCIATION: "a VM's logs to the collection rule",
    d.VM_EXTENSION: "the Azure Monitor Agent on a VM",
    d.ACTION_GROUP: "who the alerts mail",
    d.BACKUP_VAULT: "the Backup vault of the data disk",
    d.BACKUP_POLICY: "the daily disk backup policy",
    d.BACKUP_INSTANCE: "daily backups of a data disk",
    d.ROLE_ASSIGNMENT: "a role the backups need",
    d.ROLE_DEFINITION: "the snapshot workflow's role: the share's actions only",
    d.WORKFLOW: "the daily snapshots of the NFS share",
}


def _about(change: Change, inputs: dict[str, Any]) -> str:
    if change.type in d.ALERTS:
        return f"alert: {inputs.get('description') or 'an alert rule'}"
    if change.type == d.TABLE:
        return f"log table {inputs.get('tableName', change.name)}"
    if change.type == d.ACTION_GROUP:
        mails = [r.get("emailAddress") for r in inputs.get("emailReceivers") or []]
        return f"who the alerts mail ({', '.join(map(str, mails)) or 'nobody'})"
    if change.type == d.WORKSPACE and inputs.get("retentionInDays"):
        return f"the logs' Log Analytics workspace (kept {inputs['retentionInDays']} days)"
    return WHAT.get(change.type, change.type)


def line(change: Change, before: dict[str, Any], after: dict[str, Any]) -> str:
    inputs = after.get("inputs") or before.get("inputs") or {}
    about = _about(change, inputs)
    if change.kind == "add":
        return f"{change.name}: new, {about}; {NO_DOWNTIME}"
    if change.kind == "remove":
        return f"{change.name}: deleted, {about}; {NO_DOWNTIME}"
    if change.replaced_by:
        return f"{change.name}: replaced ({', '.join(change.replaced_by)} changed), {about}"
    return f"{change.name}: {about}, updated in place; {NO_DOWNTIME}"


def removal_warnings(type_: str, name: str) -> list[str]:
    """What a deletion loses for good."""
    if type_ == d.WORKSPACE:
        return [f"Log Analytics workspace {name} will be DELETED, and the logs in it"]
    if type_ in (d.BACKUP_INSTANCE, d.BACKUP_VAULT):
        return [f"{name} will be DELETED, and the disk's backups (recovery points) with it"]
    return []
