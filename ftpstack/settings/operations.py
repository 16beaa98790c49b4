"""The rules of the operations settings (logs, alerts, backups): each refuses with one line naming
the key, the value and the fix. `coherence.RULES` runs them after the others."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ftpstack import azure_ops as ops
from ftpstack.settings.errors import refuse

if TYPE_CHECKING:
    from ftpstack.settings.model import Settings


def alerts_reach_someone(s: Settings) -> None:
    # Alerts without addresses still fire (the portal's Alerts pane); `make plan` warns, and the
    # policy pack refuses a production stack whose alerts mail nobody.
    if len(s.alert_emails) > ops.EMAILS_PER_ACTION_GROUP:
        raise refuse(
            "alertEmails",
            f"[{len(s.alert_emails)} addresses]",
            f"an action group mails at most {ops.EMAILS_PER_ACTION_GROUP} addresses",
            "mail a distribution list instead",
        )
    if len(set(s.alert_emails)) != len(s.alert_emails):
        raise refuse("alertEmails", s.alert_emails, "lists an address twice", "list each once")


def workspace_is_a_workspace(s: Settings) -> None:
    if not s.log_workspace_id:
        return
    if not ops.WORKSPACE_ID.fullmatch(s.log_workspace_id):
        raise refuse(
            "logWorkspaceId",
            s.log_workspace_id,
            "is not the resource id of a Log Analytics workspace",
            "copy it from `az monitor log-analytics workspace show -g <group> -n <name> --query "
            "id`, or leave it empty for a new workspace",
        )
    if not s.operations["logs"]:
        raise refuse(
            "logWorkspaceId",
            s.log_workspace_id,
            "is set but logs are off here",
            "set logs: on, or drop logWorkspaceId",
        )


RULES = [alerts_reach_someone, workspace_is_a_workspace]
