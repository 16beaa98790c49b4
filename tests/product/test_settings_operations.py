"""L0: the operations settings (logs, alerts, backups): on by default in a production stack (2+
instances, or tagged environment: prod), off elsewhere, each with an explicit opt-out; refused in
one line naming the key, the value and the fix."""

from __future__ import annotations

from typing import Any

import pytest

from ftpstack import azure_ops as ops
from ftpstack.settings import SettingsError
from tests.support import settings

PROD = {"tags": {"environment": "prod"}, "alertEmails": ["ops@example.com"]}
WORKSPACE = (
    "/subscriptions/0000/resourceGroups/ops/providers/Microsoft.OperationalInsights/"
    "workspaces/central"
)


def refused(**raw: Any) -> str:
    with pytest.raises(SettingsError) as caught:
        settings(**raw)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("ftpstack:"), message
    return message


def test_dev_has_none_and_production_has_all_by_default() -> None:
    assert settings().operations == {"logs": False, "alerts": False, "backups": False}
    assert settings(**PROD).operations == {"logs": True, "alerts": True, "backups": True}
    # Two instances make a stack production without any tag.
    two = settings(instances=2, exposure="load-balancer", alertEmails=["ops@example.com"])
    assert two.production and all(two.operations.values())
    assert settings(tags={"environment": "Production"}, alerts="off").production


def test_each_opts_out_alone_and_is_named_as_opted_out() -> None:
    for key in ("logs", "alerts", "backups"):
        s = settings(**{**PROD, key: "off"})
        assert s.operations[key] is False
        assert [k for k, on in s.operations.items() if not on] == [key]
        assert s.opted_out == [key]
    # `auto` outside production is off, but not an explicit opt-out.
    assert settings().opted_out == []


def test_on_turns_them_on_in_dev() -> None:
    s = settings(logs="on", alerts="on", backups="on", alertEmails=["a@example.com"])
    assert s.operations == {"logs": True, "alerts": True, "backups": True}


def test_no_backups_without_files_to_back_up() -> None:
    assert settings(**PROD, dataDiskSizeGb=0).operations["backups"] is False


@pytest.mark.parametrize(
    ("raw", "key", "fix"),
    [
        ({"alertEmails": ["ops@example.com, dev@example.com"]}, "alertEmails", "its own list item"),
        ({"alertEmails": "ops@example.com"}, "alertEmails", "ops@example.com"),
        ({"alertEmails": ["a@example.com", "a@example.com"]}, "alertEmails", "list each once"),
        ({"logs": "yes"}, "logs = 'yes'", "auto, on or off"),
        ({"logRetentionDays": 7}, "logRetentionDays = 7", "30"),
        ({"logRetentionDays": 731}, "logRetentionDays = 731", "730"),
        ({"backupRetentionDays": 0}, "backupRetentionDays = 0", "1"),
        ({"backupRetentionDays": 181}, "backupRetentionDays = 181", "180"),
        ({"logs": "on", "logWorkspaceId": "central"}, "logWorkspaceId = 'central'", "az monitor"),
        ({"logWorkspaceId": WORKSPACE}, "logWorkspaceId", "set logs: on"),
    ],
)
def test_refused_with_key_value_and_fix(raw: dict[str, Any], key: str, fix: str) -> None:
    message = refused(**raw)
    assert f"ftpstack:{key}" in message and fix in message, message


def test_the_ranges_are_azures() -> None:
    assert (ops.LOG_RETENTION_DAYS.low, ops.LOG_RETENTION_DAYS.high) == (30, 730)
    assert ops.BACKUP_RETENTION_DAYS.high == 180
    s = settings(logs="on", logWorkspaceId=WORKSPACE, logRetentionDays=730, backupRetentionDays=180)
    assert s.log_workspace_id == WORKSPACE
