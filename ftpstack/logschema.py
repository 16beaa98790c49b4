"""The logs ftpstack ships to Log Analytics, written once: where proftpd writes each, in what
format, and the table and stream the data collection rule declares for it. proftpd's
configuration (`ftpstack.render`), the data collection rule (`ftpstack.monitoring`), the README's
queries and the L2 test that parses real records all read this module.

Transfers and logins are JSON, one object a line, from proftpd's own `ExtendedLog` with a
`LogFormat` that spells a JSON object (proftpd 1.3.8's mod_log has no JSON mode of its own; its
JSON support is for mod_redis and mod_kafka only). A value proftpd logs is written as it is, so
proftpd refuses any argument with a double quote, a backslash or a control character
(`ftpstack.render.DENY_FILTER`) and no column holds a response text; the one record still lost,
a refused SFTP upload of such a name, is in test_logs and docs/operations.md. The ban log (mod_ban's
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
        """proftpd's LogFormat text: a JSON object of the columns, each value a string (proftpd
        writes "-" for a number it does not know; the rule's transformation converts)."""
        fields = [f'\\"{c.name}\\":\\"{c.variable}\\"' for c in self.columns]
        return '"{' + ",".join(fields) + '}"'

    @property
    def stream_columns(self) -> tuple[Column, ...]:
        """The columns the DCR's stream declares: what the file holds (JSON: strings)."""
        if self.format == "json":
            return tuple(Column(c.name, "string") for c in self.columns)
        return self.columns


# The time as UTC ISO-8601, which Log Analytics reads as a datetime (Azure VMs and the test
# namespaces run in UTC; proftpd's strftime variable uses the server's time zone).
TIME = Column("Time", "datetime", "%{%Y-%m-%dT%H:%M:%SZ}t")
ADDRESS = Column("Address", "string", "%a")
PROTOCOL = Column("Protocol", "string", "%{protocol}")
STATUS = Column("Status", "string", "%s")

TRANSFER = LogFile(
    name="transfer",
    path=f"{paths.LOG_DIR}/{paths.TRANSFER_JSON}",
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
        Column("Bytes", "long", "%b"),
        Column("Milliseconds", "long", "%{transfer-millisecs}"),
        STATUS,
        Column("Result", "string", "%{transfer-status}"),
    ),
)
LOGIN = LogFile(
    name="login",
    path=f"{paths.LOG_DIR}/{paths.LOGIN_JSON}",
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
        # No response text (%S): proftpd echoes a refused argument in it, unescaped.
    ),
)
RAW = (Column("TimeGenerated", "datetime"), Column("RawData", "string"))
BAN = LogFile("ban", f"{paths.LOG_DIR}/ban.log", "FtpBan_CL", "text", RAW)
SYSTEM = LogFile("system", paths.SYSTEM_LOG, "FtpSystem_CL", "text", RAW)
LOG_FILES = (TRANSFER, LOGIN, BAN, SYSTEM)
JSON_LOGS = tuple(f for f in LOG_FILES if f.format == "json")
# proftpd's own logs (SystemLog, BanLog) start each line "2026-12-06 06:26:38,141 …": the agent's
# "YYYY-MM-DD HH:MM:SS" record start format (one record a line).
TEXT_TIMESTAMP_FORMAT = "YYYY-MM-DD HH:MM:SS"
TEXT_TIMESTAMP_RE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")
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


CONVERT = {"datetime": "todatetime", "long": "tolong", "int": "toint", "real": "toreal"}


def transform(log: LogFile) -> str:
    """The DCR's transformation into the table: JSON logs take their own time, and their
    numbers become numbers ("-" becomes empty)."""
    if log.format != "json":
        return "source"
    typed = [
        f"{c.name} = {CONVERT[c.type]}({c.name})"
        for c in log.columns
        if c.type in CONVERT and c != TIME
    ]
    time = f"TimeGenerated = todatetime({TIME.name})"
    return f"source | extend {', '.join([time, *typed])} | project-away {TIME.name}"


def table_columns(log: LogFile) -> tuple[Column, ...]:
    """The table's columns: the agent's, then the log's own (the JSON time becomes
    TimeGenerated)."""
    own = tuple(c for c in log.columns if c.name not in {"Time", "TimeGenerated"})
    return AGENT_COLUMNS + own


def proftpd_directives() -> str:
    """proftpd.conf's lines that write the JSON logs: a LogFormat and an ExtendedLog each."""
    lines = []
    for log in JSON_LOGS:
        lines.append(f"LogFormat             {log.name} {log.log_format}")
        lines.append(f"ExtendedLog           {log.path} {log.classes} {log.name}")
    return "\n".join(lines)
