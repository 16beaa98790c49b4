"""Logs and alerts of a stack: what an operator needs to see every transfer and to be told when a
server is down or full, declared from the settings (`logs`, `alerts`; `ftpstack.azure_ops` has
Azure's names and limits, `ftpstack.logschema` the log files).

- Logs: a Log Analytics workspace (or an existing one), a custom table per log file, one data
  collection rule reading the files and the data disk's used space, the Azure Monitor Agent on
  every VM (which signs in with the VM's managed identity) and the rule's association with it.
- Alerts, to one action group mailing `alertEmails`: an instance failing the load balancer's
  health probe for 5 minutes (without a load balancer: the VM unavailable for 5 minutes); no
  healthy instance for a minute; the share (or, with logs, the data disk) 80% full; a failed
  configuration step (a failed Run Command write in the activity log).

Deliberately not here: dashboards, and alerts on what the smoke check of `pulumi up` already
reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import pulumi
from pulumi_azure_native import compute, monitor, operationalinsights

from ftpstack import azure_ops as ops
from ftpstack import logschema
from ftpstack.parts import Placement, located
from ftpstack.settings import Settings

DESTINATION = "workspace"
PERF_STREAM = "Microsoft-Perf"
# The data disk's mount point, as the Perf table names its logical disk.
DISK_COUNTER = "Logical Disk(*)\\% Used Space"


@dataclass(frozen=True)
class Workspace:
    id: pulumi.Input[str]
    rg: pulumi.Input[str]
    name: pulumi.Input[str]
    tables: list[pulumi.Resource]


def workspace(name: str, s: Settings, where: Placement, parent: pulumi.Resource) -> Workspace:
    """The stack's workspace, or the existing one `logWorkspaceId` names, with the custom tables
    the data collection rule writes (Azure refuses a rule whose output table does not exist)."""
    found = ops.WORKSPACE_ID.fullmatch(s.log_workspace_id)
    if found:
        rg = s.log_workspace_id.split("/")[4]
        ws: Workspace = Workspace(s.log_workspace_id, rg, found.group(1), [])
        owner: pulumi.Resource = parent
    else:
        made = operationalinsights.Workspace(
            f"{name}-logs",
            resource_group_name=where.rg_name,
            location=s.location,
            sku={"name": ops.WORKSPACE_SKU},
            retention_in_days=s.log_retention_days,
            tags=s.tags,
            opts=located(parent),
        )
        ws, owner = Workspace(made.id, where.rg_name, made.name, []), made
    for log in logschema.LOG_FILES:
        ws.tables.append(
            operationalinsights.Table(
                f"{name}-table-{log.name}",
                resource_group_name=ws.rg,
                workspace_name=ws.name,
                table_name=log.table,
                schema={
                    "name": log.table,
                    "columns": [
                        {"name": c.name, "type": c.type} for c in logschema.table_columns(log)
                    ],
                },
                opts=pulumi.ResourceOptions(parent=owner),
            )
        )
    return ws


def collection_rule(
    name: str, s: Settings, where: Placement, ws: Workspace, parent: pulumi.Resource
) -> monitor.DataCollectionRule:
    """What the agent reads on each VM and where it goes: the four log files (JSON or text), and
    the used space of the VM's disks every minute."""
    sources: list[dict[str, Any]] = []
    for log in logschema.LOG_FILES:
        source: dict[str, Any] = {
            "name": log.name,
            "streams": [log.stream],
            "file_patterns": [log.path],
            "format": log.format,
        }
        if log.format == "text":
            source["settings"] = {
                "text": {"record_start_timestamp_format": logschema.TEXT_TIMESTAMP_FORMAT}
            }
        sources.append(source)
    flows = [
        {
            "streams": [log.stream],
            "destinations": [DESTINATION],
            "transform_kql": logschema.transform(log),
            "output_stream": log.stream,
        }
        for log in logschema.LOG_FILES
    ]
    flows.append({"streams": [PERF_STREAM], "destinations": [DESTINATION]})
    declarations = {
        log.stream: {"columns": [{"name": c.name, "type": c.type} for c in log.stream_columns]}
        for log in logschema.LOG_FILES
    }
    return monitor.DataCollectionRule(
        f"{name}-logs-rule",
        resource_group_name=where.rg_name,
        location=s.location,
        kind="Linux",
        description="ftpstack: proftpd's transfer, login, ban and system logs; disk space",
        stream_declarations=cast(Any, declarations),
        data_sources={
            "log_files": cast(Any, sources),
            "performance_counters": [
                {
                    "name": "disk",
                    "streams": [PERF_STREAM],
                    "sampling_frequency_in_seconds": 60,
                    "counter_specifiers": [DISK_COUNTER],
                }
            ],
        },
        destinations={
            "log_analytics": [{"name": DESTINATION, "workspace_resource_id": ws.id}],
        },
        data_flows=cast(Any, flows),
        tags=s.tags,
        opts=located(parent, depends_on=ws.tables),
    )


def agent(
    vm: compute.VirtualMachine,
    vm_name: str,
    s: Settings,
    where: Placement,
    rule: monitor.DataCollectionRule,
) -> monitor.DataCollectionRuleAssociation:
    """The Azure Monitor Agent on one VM, and the rule associated with it."""
    extension = compute.VirtualMachineExtension(
        f"{vm_name}-monitor-agent",
        resource_group_name=where.rg_name,
        vm_name=vm.name,
        vm_extension_name=ops.AMA_TYPE,
        location=s.location,
        publisher=ops.AMA_PUBLISHER,
        type=ops.AMA_TYPE,
        type_handler_version=ops.AMA_VERSION,
        auto_upgrade_minor_version=True,
        enable_automatic_upgrade=True,
        tags=s.tags,
        opts=located(vm, depends_on=[vm]),
    )
    return monitor.DataCollectionRuleAssociation(
        f"{vm_name}-logs",
        resource_uri=vm.id,
        association_name="ftpstack-logs",
        data_collection_rule_id=rule.id,
        opts=pulumi.ResourceOptions(parent=vm, depends_on=[extension, rule]),
    )


# -- alerts ---------------------------------------------------------------------------------------


def action_group(
    name: str, s: Settings, where: Placement, parent: pulumi.Resource
) -> monitor.ActionGroup:
    return monitor.ActionGroup(
        f"{name}-alerts",
        resource_group_name=where.rg_name,
        location="global",
        group_short_name="ftpstack",
        enabled=True,
        email_receivers=[
            {"name": f"email-{i}", "email_address": address, "use_common_alert_schema": True}
            for i, address in enumerate(s.alert_emails)
        ],
        tags=s.tags,
        opts=located(parent),
    )


def metric_alert(
    name: str,
    s: Settings,
    where: Placement,
    group: monitor.ActionGroup,
    *,
    scope: pulumi.Input[str],
    namespace: str,
    criterion: dict[str, Any],
    window: str,
    every: str,
    severity: int,
    description: str,
    parent: pulumi.Resource,
) -> monitor.MetricAlert:
    return monitor.MetricAlert(
        name,
        resource_group_name=where.rg_name,
        location="global",
        description=description,
        severity=severity,
        enabled=True,
        scopes=[scope],
        evaluation_frequency=every,
        window_size=window,
        auto_mitigate=True,
        # Typed: a plain dict for this union is sent with its Python key names.
        criteria=monitor.MetricAlertSingleResourceMultipleMetricCriteriaArgs(
            odata_type="Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria",
            all_of=[
                monitor.MetricCriteriaArgs(
                    criterion_type="StaticThresholdCriterion",
                    name="condition",
                    metric_namespace=namespace,
                    metric_name=criterion["metric_name"],
                    operator=criterion["operator"],
                    threshold=criterion["threshold"],
                    time_aggregation=criterion["time_aggregation"],
                    dimensions=[
                        monitor.MetricDimensionArgs(**dimension)
                        for dimension in criterion.get("dimensions", [])
                    ],
                )
            ],
        ),
        actions=[{"action_group_id": group.id}],
        tags=s.tags,
        opts=located(parent),
    )


def probe_criteria(split: bool) -> dict[str, Any]:
    dimensions = [{"name": ops.PROBE_DIMENSION, "operator": "Include", "values": ["*"]}]
    return {
        "metric_name": ops.PROBE_METRIC,
        "time_aggregation": "Average",
        "operator": "LessThan",
        # Per instance: any failed probe within the window; all together: hardly any passes.
        "threshold": 100 if split else 1,
        "dimensions": dimensions if split else [],
    }


def configuration_alert(
    name: str,
    s: Settings,
    group: monitor.ActionGroup,
    rg_id: pulumi.Input[str],
    parent: pulumi.Resource,
    where: Placement,
) -> monitor.ActivityLogAlert:
    """A configuration step that fails is a Run Command write that fails (its failure fails the
    deployment: treatFailureAsDeploymentFailure)."""
    return monitor.ActivityLogAlert(
        f"{name}-alert-configuration",
        resource_group_name=where.rg_name,
        location="global",
        description="A configuration step (Run Command) of an FTP server failed",
        enabled=True,
        scopes=[rg_id],
        condition={
            "all_of": [
                {"field": "category", "equals": "Administrative"},
                {"field": "operationName", "equals": ops.RUN_COMMAND_WRITE},
                {"field": "status", "equals": "Failed"},
            ]
        },
        actions={"action_groups": [{"action_group_id": group.id}]},
        tags=s.tags,
        opts=located(parent),
    )


def disk_space_alert(
    name: str,
    s: Settings,
    where: Placement,
    group: monitor.ActionGroup,
    ws: Workspace,
    parent: pulumi.Resource,
    after: Sequence[pulumi.Resource],
) -> monitor.ScheduledQueryRule:
    """The data disk's used space, from the agent's counter in the workspace (a data disk has no
    platform metric of its use)."""
    query = (
        'Perf | where ObjectName == "Logical Disk" and CounterName == "% Used Space" '
        '| where InstanceName == "/srv/ftp" '
        "| summarize UsedPercent = max(CounterValue) by Computer"
    )
    return monitor.ScheduledQueryRule(
        f"{name}-alert-disk-full",
        resource_group_name=where.rg_name,
        location=s.location,
        kind="LogAlert",
        description=f"The data disk at /srv/ftp is over {ops.SHARE_FULL_PERCENT}% full",
        severity=2,
        enabled=True,
        scopes=[ws.id],
        evaluation_frequency="PT15M",
        window_size="PT15M",
        criteria={
            "all_of": [
                {
                    "query": query,
                    "time_aggregation": "Maximum",
                    "metric_measure_column": "UsedPercent",
                    "operator": "GreaterThan",
                    "threshold": ops.SHARE_FULL_PERCENT,
                    "dimensions": [{"name": "Computer", "operator": "Include", "values": ["*"]}],
                    "failing_periods": {
                        "number_of_evaluation_periods": 1,
                        "min_failing_periods_to_alert": 1,
                    },
                }
            ]
        },
        actions={"action_groups": [group.id]},
        tags=s.tags,
        opts=located(parent, depends_on=list(after)),
    )
