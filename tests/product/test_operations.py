"""L1: the operations of a stack under Pulumi mocks — logs, alerts, backups: none in dev, all in
prod, each gone with its opt-out (and the VMs tagged so); what each resource reads (the log files
`ftpstack.logschema` declares, the disks and the share it backs up, the load balancer it watches)
flows from the resource it names, with the dependencies Azure needs (tables before the rule, the
agent before the association, the vault's roles before its backup instance)."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import pulumi
import pytest

from ftpstack import azure_ops as ops
from ftpstack import logschema
from ftpstack.checks import TAG_OPTED_OUT
from ftpstack.component import FtpServer, FtpServerArgs
from ftpstack.offline import armcheck
from ftpstack.offline import declared as d
from ftpstack.offline.mocks import Mocks
from ftpstack.offline.plan import Plan, Resource
from tests.support import ONE_SERVER, USERS, plan_test_stack, settings

WORKSPACE = (
    "/subscriptions/0000/resourceGroups/ops/providers/Microsoft.OperationalInsights/"
    "workspaces/central"
)
# prod with one server: a data disk instead of the share.
SINGLE = {**ONE_SERVER, "exposure": "public-ip"}


@cache
def _plan(stack: str, frozen: str) -> Plan:
    return plan_test_stack(stack, {"users": USERS, **json.loads(frozen)})


def plan(stack: str = "dev", **overrides: Any) -> Plan:
    return _plan(stack, json.dumps(overrides, sort_keys=True))


def types(p: Plan) -> set[str]:
    return {r.type for r in p.resources}


def one(p: Plan, type_: str) -> Resource:
    (found,) = p.find(type_)
    return found


def test_dev_declares_no_operations_and_prod_all() -> None:
    assert types(plan("dev")) & d.OPERATIONS == set()
    prod = types(plan("prod"))
    assert {d.WORKSPACE, d.TABLE, d.COLLECTION_RULE, d.COLLECTION_ASSOCIATION} <= prod
    assert {d.VM_EXTENSION, d.ACTION_GROUP, d.METRIC_ALERT, d.ACTIVITY_ALERT} <= prod
    assert {d.WORKFLOW, d.ROLE_ASSIGNMENT} <= prod
    # prod's files are on the share: no disk to back up, snapshots instead.
    assert d.BACKUP_VAULT not in prod


def test_the_rule_reads_the_files_the_schema_declares_into_its_tables() -> None:
    p = plan("prod")
    rule = one(p, d.COLLECTION_RULE).inputs
    files = {s["name"]: s for s in rule["dataSources"]["logFiles"]}
    assert set(files) == {log.name for log in logschema.LOG_FILES}
    for log in logschema.LOG_FILES:
        assert files[log.name]["filePatterns"] == [log.path]
        assert files[log.name]["format"] == log.format
        declared = rule["streamDeclarations"][log.stream]["columns"]
        assert declared == [{"name": c.name, "type": c.type} for c in log.stream_columns]
    flows = {f["streams"][0]: f for f in rule["dataFlows"]}
    assert {flows[log.stream]["outputStream"] for log in logschema.LOG_FILES} == {
        log.stream for log in logschema.LOG_FILES
    }
    tables = {t.inputs["tableName"] for t in p.find(d.TABLE)}
    assert tables == {log.table for log in logschema.LOG_FILES}
    # Azure refuses a rule whose output tables do not exist yet.
    assert {t.name for t in p.find(d.TABLE)} <= set(one(p, d.COLLECTION_RULE).dependencies)
    workspace = one(p, d.WORKSPACE)
    assert rule["destinations"]["logAnalytics"][0]["workspaceResourceId"] == workspace.id
    assert workspace.inputs["retentionInDays"] == 30


def test_every_vm_has_the_agent_its_identity_and_the_rule() -> None:
    p = plan("prod")
    vms = p.find(d.VM)
    rule = one(p, d.COLLECTION_RULE)
    assert len(vms) == 2
    for vm in vms:
        assert vm.inputs["identity"] == {"type": "SystemAssigned"}
        (agent,) = [e for e in p.find(d.VM_EXTENSION) if e.parent == vm.name]
        assert agent.inputs["type"] == ops.AMA_TYPE
        assert agent.inputs["publisher"] == ops.AMA_PUBLISHER
        (link,) = [a for a in p.find(d.COLLECTION_ASSOCIATION) if a.parent == vm.name]
        assert link.inputs["resourceUri"] == vm.id
        assert link.inputs["dataCollectionRuleId"] == rule.id
        assert {agent.name, rule.name} <= set(link.dependencies)
    # Without logs the VMs have no identity to sign in with: nothing is granted to them.
    assert "identity" not in one(plan("dev"), d.VM).inputs


def test_alerts_watch_the_load_balancer_and_mail_the_addresses() -> None:
    p = plan("prod")
    group = one(p, d.ACTION_GROUP)
    assert [r["emailAddress"] for r in group.inputs["emailReceivers"]] == ["ops@example.com"]
    lb = one(p, d.LOAD_BALANCER)
    alerts = {a.name: a.inputs for a in p.find(d.METRIC_ALERT)}
    assert set(alerts) == {"ftp-alert-unhealthy", "ftp-alert-none-healthy", "ftp-alert-share-full"}
    for name in ("ftp-alert-unhealthy", "ftp-alert-none-healthy"):
        assert alerts[name]["scopes"] == [lb.id]
        (criterion,) = alerts[name]["criteria"]["allOf"]
        assert criterion["metricName"] == ops.PROBE_METRIC
    (per_instance,) = alerts["ftp-alert-unhealthy"]["criteria"]["allOf"]
    assert per_instance["dimensions"][0]["name"] == ops.PROBE_DIMENSION
    assert alerts["ftp-alert-unhealthy"]["windowSize"] == "PT5M"
    account = one(p, d.STORAGE_ACCOUNT)
    assert alerts["ftp-alert-share-full"]["scopes"] == [f"{account.id}/fileServices/default"]
    (full,) = alerts["ftp-alert-share-full"]["criteria"]["allOf"]
    assert full["threshold"] == 100 * 2**30 * 80 // 100  # 80% of the 100 GiB share
    for alert in [*p.find(d.METRIC_ALERT), one(p, d.ACTIVITY_ALERT)]:
        assert group.name in alert.dependencies
    failed = one(p, d.ACTIVITY_ALERT).inputs["condition"]["allOf"]
    assert {"field": "status", "equals": "Failed"} in failed
    assert {"field": "operationName", "equals": ops.RUN_COMMAND_WRITE} in failed


def test_one_server_alerts_on_its_vm_and_its_disk_space() -> None:
    p = plan("prod", **SINGLE)
    (alert,) = p.find(d.METRIC_ALERT)
    assert alert.inputs["scopes"] == [one(p, d.VM).id]
    assert alert.inputs["criteria"]["allOf"][0]["metricName"] == ops.VM_METRIC
    disk_alert = one(p, d.LOG_ALERT).inputs
    assert disk_alert["scopes"] == [one(p, d.WORKSPACE).id]
    assert "/srv/ftp" in disk_alert["criteria"]["allOf"][0]["query"]
    # Without logs there is no counter to alert on: no such rule.
    assert d.LOG_ALERT not in types(plan("prod", **SINGLE, logs="off"))


def test_the_data_disk_is_backed_up_by_a_vault_with_the_roles_it_needs() -> None:
    p = plan("prod", **SINGLE, backupRetentionDays=14)
    disk = one(p, d.DISK)
    assert one(p, d.BACKUP_VAULT).inputs["identity"] == {"type": "SystemAssigned"}
    instance = one(p, d.BACKUP_INSTANCE).inputs["properties"]
    assert instance["dataSourceInfo"]["resourceID"] == disk.id  # ARM's spelling
    policy = one(p, d.BACKUP_POLICY)
    assert instance["policyInfo"]["policyId"] == policy.id
    rules = policy.inputs["properties"]["policyRules"]
    kept = next(r for r in rules if r["objectType"] == "AzureRetentionRule")
    assert kept["lifecycles"][0]["deleteAfter"]["duration"] == "P14D"
    roles = {r.inputs["roleDefinitionId"].rsplit("/", 1)[1]: r for r in p.find(d.ROLE_ASSIGNMENT)}
    assert set(roles) == {
        ops.DISK_BACKUP_READER,
        ops.DISK_SNAPSHOT_CONTRIBUTOR,
        ops.DISK_RESTORE_OPERATOR,
    }
    assert roles[ops.DISK_BACKUP_READER].inputs["scope"] == disk.id
    group = one(p, d.RESOURCE_GROUP)
    assert (
        roles[ops.DISK_SNAPSHOT_CONTRIBUTOR]
        .inputs["scope"]
        .endswith(f"/resourceGroups/{group.inputs.get('resourceGroupName') or group.name}")
    )
    principals = {r.inputs["principalId"] for r in roles.values()}
    assert len(principals) == 1 and "" not in principals
    # Azure checks the roles when the instance is made.
    backup = one(p, d.BACKUP_INSTANCE)
    assert {r.name for r in roles.values()} <= set(backup.dependencies)


def test_the_share_is_snapshotted_by_a_workflow_allowed_only_its_share_actions() -> None:
    p = plan("prod", backupRetentionDays=7)
    flow, account = one(p, d.WORKFLOW), one(p, d.STORAGE_ACCOUNT)
    (role,), (definition,) = p.find(d.ROLE_ASSIGNMENT), p.find(d.ROLE_DEFINITION)
    assert role.inputs["scope"] == account.id
    assert role.inputs["roleDefinitionId"] == definition.id
    assert role.inputs["principalId"] and role.inputs["principalType"] == "ServicePrincipal"
    # The share's three actions and nothing else, assignable in the stack's group only.
    assert definition.inputs["permissions"] == [{"actions": list(ops.SHARE_SNAPSHOT_ACTIONS)}]
    assert {a.rsplit("/", 1)[0] for a in ops.SHARE_SNAPSHOT_ACTIONS} == {
        "Microsoft.Storage/storageAccounts/fileServices/shares"
    }
    group = one(p, d.RESOURCE_GROUP)
    assert definition.inputs["assignableScopes"] == [group.id] == [definition.inputs["scope"]]
    assert definition.inputs["roleName"].endswith(f"({account.id.rsplit('/', 1)[1]})")
    actions = flow.inputs["definition"]["actions"]
    share = one(p, d.FILE_SHARE)
    assert actions["snapshot"]["inputs"]["uri"].startswith(
        f"https://management.azure.com{share.id}?$expand=snapshots"
    )
    assert "addDays(utcNow(), -7)" in actions["expired"]["inputs"]["where"]
    assert actions["delete"]["actions"]["delete-one"]["inputs"]["method"] == "DELETE"


def test_each_opt_out_removes_its_part_and_tags_the_vms() -> None:
    parts = {
        "logs": {d.WORKSPACE, d.COLLECTION_RULE, d.COLLECTION_ASSOCIATION, d.VM_EXTENSION},
        "alerts": {d.ACTION_GROUP, d.METRIC_ALERT, d.ACTIVITY_ALERT},
        "backups": {d.WORKFLOW},
    }
    assert all(part <= types(plan("prod")) for part in parts.values())
    for key, part in parts.items():
        p = plan("prod", **{key: "off"})
        assert types(p) & part == set(), key
        others = set().union(*(v for k, v in parts.items() if k != key))
        assert others <= types(p), key
        assert {vm.inputs["tags"][TAG_OPTED_OUT] for vm in p.find(d.VM)} == {key}
    assert one(plan("dev"), d.VM).inputs["tags"][TAG_OPTED_OUT] == "none"


def test_an_existing_workspace_gets_the_tables_and_the_logs() -> None:
    p = plan("prod", logWorkspaceId=WORKSPACE)
    assert not p.find(d.WORKSPACE)
    rule = one(p, d.COLLECTION_RULE).inputs
    assert rule["destinations"]["logAnalytics"][0]["workspaceResourceId"] == WORKSPACE
    for table in p.find(d.TABLE):
        assert table.inputs["workspaceName"] == "central"
        assert table.inputs["resourceGroupName"] == "ops"


def test_the_arm_check_passes_and_catches_what_azure_refuses() -> None:
    for p in (plan("prod"), plan("prod", **SINGLE), plan("dev", logs="on", alerts="on")):
        assert armcheck.check(p.to_json(), {r.name: r.raw_inputs for r in p.resources}) == []
    # Negative controls: a retention Azure refuses; a global alert that is not replaced when its
    # location changes.
    document = plan("prod", **SINGLE).to_json()
    for r in document["resources"]:
        if r["type"] == d.WORKSPACE:
            r["inputs"]["retentionInDays"] = 7
        if r["type"] == d.ACTION_GROUP:
            r["options"]["replaceOnChanges"] = []
            r["inputs"]["groupShortName"] = "ftpstack-production"
        if r["type"] == d.BACKUP_POLICY:
            rules = r["inputs"]["properties"]["policyRules"]
            rules[1]["lifecycles"][0]["deleteAfter"]["duration"] = "P365D"
    found = {(f.rule, f.resource, f.problem.split()[0]) for f in armcheck.check(document, {})}
    assert {
        ("ranges", "ftp-logs", "retentionInDays"),
        ("immutable", "ftp-alerts", "location"),
        ("ranges", "ftp-alerts", "groupShortName"),
        ("ranges", "ftp-backup-policy", "retention"),
    } <= found, found


@pytest.fixture
def mocked() -> None:
    pulumi.runtime.settings.ROOT.set(None)
    pulumi.runtime.set_mocks(Mocks(), project="ftpstack", stack="unit", preview=False)


@pulumi.runtime.test  # type: ignore[untyped-decorator]
def test_the_component_sends_the_logs_to_its_workspace(mocked: None) -> pulumi.Output[None]:
    """pulumi/examples style: the rule's destination, read back from the Outputs."""
    s = settings(**{"tags": {"environment": "prod"}, "alertEmails": ["ops@example.com"]})
    server = FtpServer("ops", FtpServerArgs(s))
    children = list(server._childResources)  # type: ignore[attr-defined]
    from pulumi_azure_native import monitor, operationalinsights

    rule = next(c for c in children if isinstance(c, monitor.DataCollectionRule))
    ws = next(c for c in children if isinstance(c, operationalinsights.Workspace))

    def check(args: list[Any]) -> None:
        destinations, workspace_id = args
        (destination,) = destinations["log_analytics"]  # the Output, in the SDK's key names
        assert destination["workspace_resource_id"] == workspace_id

    return pulumi.Output.all(rule.destinations, ws.id).apply(check)
