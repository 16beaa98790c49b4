"""L0: the one schema of the shipped logs (`ftpstack.logschema`) is what proftpd's configuration,
the data collection rule's transformation and the operator's queries (docs/operations.md) use:
the LogFormat spells a JSON object of exactly the declared columns; the queries name only
declared tables and their columns, and match bans with the schema's own pattern."""

from __future__ import annotations

import json
import re

import pytest

from ftpstack import logschema, render
from tests.support import ROOT, settings

PAGE = (ROOT / "docs" / "operations.md").read_text()
QUERIES = re.findall(r"```kql\n(.+?)```", PAGE, re.S)
# Identifiers a query compares, projects or groups by.
COMPARED = re.compile(r"\b([A-Z][A-Za-z]*)\s*(?:==|=~|!=|\bin\b|>|<)")
LISTED = re.compile(r"(?<!order )\b(?:project|by)\s+([A-Za-z, ]+)")
FUNCTIONS = {"Failures", "Users", "Last", "Uploaded", "Downloaded", "Files", "Day", "Event"}


def filled(log: logschema.LogFile, value: str) -> str:
    """The LogFormat as proftpd writes it, every variable replaced by `value`."""
    text = log.log_format[1:-1].replace('\\"', '"')
    for column in log.columns:
        text = text.replace(column.variable, value, 1)
    return text


@pytest.mark.parametrize("log", logschema.JSON_LOGS, ids=lambda log: log.name)
def test_the_log_format_is_a_json_object_of_the_declared_columns(log: logschema.LogFile) -> None:
    record = json.loads(filled(log, "x"))
    assert list(record) == [c.name for c in log.stream_columns]
    # Negative control: a value with a double quote (proftpd does not escape) breaks the line.
    with pytest.raises(json.JSONDecodeError):
        json.loads(filled(log, 'a"b'))


def test_proftpd_is_configured_with_the_schemas_directives() -> None:
    conf = render.proftpd_conf(settings(), "198.51.100.10")
    lines = {line.strip() for line in conf.splitlines()}
    assert set(logschema.proftpd_directives().splitlines()) <= lines
    assert all(log.path in conf for log in logschema.JSON_LOGS)


def test_the_transformation_types_what_the_tables_declare() -> None:
    kql = logschema.transform(logschema.TRANSFER)
    assert "TimeGenerated = todatetime(Time)" in kql and "Bytes = tolong(Bytes)" in kql
    assert kql.endswith("project-away Time")
    table = {c.name for c in logschema.table_columns(logschema.TRANSFER)}
    assert "Time" not in table and {"TimeGenerated", "Computer", "Bytes"} <= table
    assert logschema.transform(logschema.BAN) == "source"


def unknown_columns(query: str) -> set[str]:
    """What a query compares, projects or groups by that its table does not declare."""
    tables = {log.table: log for log in logschema.LOG_FILES}
    (table,) = re.findall(r"\b(\w+_CL)\b", query)
    columns = {c.name for c in logschema.table_columns(tables[table])}
    used = set(COMPARED.findall(query))
    for listed in LISTED.findall(query):
        used |= {w.strip() for w in listed.split(",") if w.strip()}
    assert used, query
    made = FUNCTIONS | ({"Address"} if table == "FtpBan_CL" else set())  # the query's own
    return used - made - columns


def test_the_queries_name_declared_tables_and_their_columns() -> None:
    assert len(QUERIES) == 4
    assert [unknown_columns(q) for q in QUERIES] == [set()] * 4


def test_negative_control_a_misspelt_column_or_table_is_seen() -> None:
    assert unknown_columns('FtpLogin_CL | where Adress == "x"') == {"Adress"}
    assert unknown_columns("FtpTransfer_CL | project User, Size") == {"Size"}
    with pytest.raises(KeyError):
        unknown_columns("FtpTransfers_CL | project User")


def test_the_ban_query_matches_with_the_schemas_pattern() -> None:
    (query,) = [q for q in QUERIES if "FtpBan_CL" in q]
    assert query.count(f'@"{logschema.BAN_PATTERN}"') == 2
    line = "2026-12-06 06:26:39,756 mod_ban/0.8[22959]: added MaxLoginAttempts-triggered autoban "
    found = logschema.BAN_RE.search(line + "for host '192.0.2.10'")
    assert found and found.groups() == ("MaxLoginAttempts", "192.0.2.10")
    assert logschema.TEXT_TIMESTAMP_RE.match(line)
