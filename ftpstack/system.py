"""The VM's own files beside proftpd's, in each instance's live configuration: the kernel's
keepalive (sysctl.d), log rotation without a restart, and the timer that brings a server back
when its storage returns."""

from __future__ import annotations

from ftpstack import paths
from ftpstack.settings import Settings
from ftpstack.vmfile import VmFile


def sysctl_conf(settings: Settings) -> str:
    return f"""\
# Written by ftpstack. TCP keepalive for every socket that asks for it: Azure forgets a flow that
# is idle for {settings.idle_timeout_seconds} s, and the kernel default (7200 s) is far too late.
# proftpd also sets these per socket (SocketOptions keepalive); this covers everything else.
net.ipv4.tcp_keepalive_time = {settings.keepalive_idle_seconds}
net.ipv4.tcp_keepalive_intvl = {settings.keepalive_interval_seconds}
net.ipv4.tcp_keepalive_probes = {settings.keepalive_count}
"""


def logrotate_conf() -> str:
    """Every proftpd log, rotated with a reload (proftpd re-opens its logs on SIGHUP while the
    sessions go on); Debian's own file would restart proftpd and cut every transfer."""
    logs = " ".join(f"{paths.LOG_DIR}/{name}" for name in paths.LOGS)
    return f"""\
# Written by ftpstack in place of Debian's proftpd-core file, which restarts proftpd.
{logs} {{
\tweekly
\tmissingok
\trotate 8
\tcompress
\tdelaycompress
\tnotifempty
\tcreate 640 root adm
\tsharedscripts
\tpostrotate
\t\t{paths.AGENT_COMMAND} reload >/dev/null 2>&1 || true
\tendscript
}}
"""


def rejoin_units() -> list[VmFile]:
    """A timer that retries the storage's mount and then starts proftpd: a server whose storage
    was missing at boot (the share's name did not resolve, the disk came late) rejoins by
    itself once it is back, instead of staying out until someone restarts the VM."""
    service = f"""\
# Written by ftpstack.
[Unit]
Description=ftpstack: start proftpd once the FTP tree's storage is back
ConditionPathExists={paths.CONFIGURED}
# Never while the boot's own mounts are still being made.
After=local-fs.target remote-fs.target

[Service]
Type=oneshot
TimeoutStartSec=120
# Nothing to do while the tree is mounted (the common case): skipped without starting Python.
ExecCondition=/bin/sh -c '! mountpoint -q {paths.FTP_ROOT}'
ExecStart={paths.AGENT_COMMAND} rejoin
"""
    timer = f"""\
# Written by ftpstack.
[Unit]
Description=ftpstack: retry the FTP tree's storage while proftpd is down

[Timer]
OnBootSec={paths.REJOIN_BOOT_SECONDS}s
OnUnitInactiveSec={paths.REJOIN_SECONDS}s

[Install]
WantedBy=timers.target
"""
    return [VmFile(paths.REJOIN_SERVICE, service), VmFile(paths.REJOIN_TIMER, timer)]
