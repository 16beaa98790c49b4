"""The logs ftpstack ships to Log Analytics, written once: where proftpd writes each, in what
format, and the table and stream the data collection rule declares for it. proftpd's
configuration (`ftpstack.render`), the data collection rule (`ftpstack.monitoring`), the README's
queries and the L2 test that parses real records all read this module.

Transfers and logins are JSON, one object a line, from proftpd's own `ExtendedLog` with a
`LogFormat` that spells a JSON object (proftpd 1.3.8's mod_log has no JSON mode of its own; its
JSON support is for mod_redis and mod_kafka only). A value proftpd logs is written as it is, so
a file name with a double quote or a backslash makes that one line invalid JSON: the agent drops
it (`ftpstack.render` refuses no names; the L2 test shows the case). The ban log (mod_ban's
`BanLog`) and proftpd's `SystemLog` are text in proftpd's fixed format: they are shipped as text
lines (a `RawData` column), parsed by the queries with `BAN_PATTERN`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ftpstack import paths


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # Log Analytics column types: string, int, long, real, datetime
    variable: str = ""  # the proftpd LogFormat variable that writes it (JSON logs)
    quoted: bool = True  # a JSON string (else a number)


@dataclass(frozen=True)
class LogFile:
    name: str  # the data source's name in the DCR, and proftpd's LogFormat name
    path: str
    table: str  # the custom table, `<name>_CL`
    format: str  # json | text
    columns: tuple[Column, ...]
    classes: str = ""  # ExtendedLog command classes (JSON logs)

    @property
    def stream(self) -> str:
        """The DCR's input stream ("Custom-" + the table)."""
        return f"Custom-{self.table}"

    @property
    def log_format(self) -> str:
        """proftpd's LogFormat text: a JSON object of the columns, one line."""
        fields = []
        for c in self.columns:
            value = f'\\"{c.variable}\\"' if c.quoted else c.variable
            fields.append(f'\\"{c.name}\\":{value}')
        return '"{' + ",".join(fields) + '}"'


# The time as UTC ISO-8601, which Log Analytics reads as a datetime (Azure VMs and the test
# namespaces run in UTC; proftpd's strftime variable uses the server's time zone).
TIME = Column("Time", "datetime", "%{%Y-%m-%dT%H:%M:%SZ}t")
ADDRESS = Column("Address", "string", "%a")
PROTOCOL = Column("Protocol", "string", "%{protocol}")
STATUS = Column("Status", "string", "%s")

TRANSFER = LogFile(
    name="transfer",
    path=f"{paths.LOG_DIR}/transfer.json",
    table="FtpTransfer_CL",
    format="json",
    classes="READ,WRITE",
    columns=(
        TIME,
        Column("User", "string", "%u"),
        ADDRESS,
        PROTOCOL,
        Column("Command", "string", "%m"),
        Column("Path", "string", "%f"),
        Column("Bytes", "long", "%b", quoted=False),
        Column("Milliseconds", "long", "%{millisecs}", quoted=False),
        STATUS,
        Column("Result", "string", "%{transfer-status}"),
    ),
)
LOGIN = LogFile(
    name="login",
    path=f"{paths.LOG_DIR}/login.json",
    table="FtpLogin_CL",
    format="json",
    classes="AUTH",
    columns=(
        TIME,
        Column("User", "string", "%U"),
        ADDRESS,
        PROTOCOL,
        Column("Command", "string", "%m"),
        STATUS,
        Column("Message", "string", "%S"),
    ),
)
RAW = (Column("TimeGenerated", "datetime"), Column("RawData", "string"))
BAN = LogFile("ban", f"{paths.LOG_DIR}/ban.log", "FtpBan_CL", "text", RAW)
SYSTEM = LogFile("system", paths.SYSTEM_LOG, "FtpSystem_CL", "text", RAW)
LOG_FILES = (TRANSFER, LOGIN, BAN, SYSTEM)
JSON_LOGS = tuple(f for f in LOG_FILES if f.format == "json")
# Columns every custom table of the agent's file logs has besides its own ("Collect logs from a
# text or JSON file": TimeGenerated, Computer, FilePath).
AGENT_COLUMNS = (
    Column("TimeGenerated", "datetime"),
    Column("Computer", "string"),
    Column("FilePath", "string"),
)

# mod_ban's log line when it bans an address (mod_ban 0.8: "added %s-triggered autoban for %s
# '%s'": the event, "host", the address), the same pattern in Python and in KQL's extract()
# (RE2): group 1 the event, group 2 the address.
BAN_PATTERN = r"added ([A-Za-z]+)-triggered autoban for host '([^']+)'"
BAN_RE = re.compile(BAN_PATTERN)


def transform(log: LogFile) -> str:
    """The DCR's transformation into the table: JSON logs take their own time."""
    if log.format == "json":
        return "source | extend TimeGenerated = Time | project-away Time"
    return "source"


def table_columns(log: LogFile) -> tuple[Column, ...]:
    """The table's columns: the agent's, then the log's own (the JSON time becomes
    TimeGenerated)."""
    own = tuple(c for c in log.columns if c.name not in {"Time", "TimeGenerated"})
    return AGENT_COLUMNS + own
