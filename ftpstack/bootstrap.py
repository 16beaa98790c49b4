"""The VM's boot image, as cloud-init user-data: what a new machine needs before any configuration
is applied, and nothing that changes later.

Azure cannot change a VM's customData after creation, so it holds only what never changes with
the stack's day-to-day settings: the packages, the storage that outlives the VM (data disk or
shared NFS share), proftpd's unit guards, the health-probe forwarding. No secret is in it (it stays
readable on the VM and in the VM model). Users, passwords, limits, TLS, the passive range and the
keepalive timings arrive later and live, through the configuration step (`ftpstack.live`); a
change to anything here replaces the VM, which the plan says.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from ftpstack import paths
from ftpstack.settings import FTP_CONTROL_PORT, Settings


@dataclass(frozen=True)
class NfsShare:
    """The Azure Files NFS share all instances mount at the FTP root."""

    host: str  # <account>.file.core.windows.net (resolved to the private endpoint in the VNet)
    path: str  # /<account>/<share>

    @property
    def source(self) -> str:
        return f"{self.host}:{self.path}"


# Azure Files NFS: NFS 4.1, AUTH_SYS, several TCP connections; hard mounts so a blip stalls I/O
# instead of failing it; _netdev orders it after the network, nofail lets the VM boot (and report)
# without it, while proftpd requires the mount and so never serves an empty tree.
NFS_OPTIONS = "vers=4,minorversion=1,sec=sys,nconnect=4,hard,noresvport,actimeo=30,_netdev,nofail"


def proftpd_dropin(settings: Settings) -> str:
    storage = (
        ""
        if not (settings.data_disk_size_gb or settings.shared_storage)
        else (
            "# The FTP tree's storage must be mounted: never serve (and accept uploads into)\n"
            f"# the OS disk's empty {paths.FTP_ROOT}.\nRequiresMountsFor={paths.FTP_ROOT}\n"
        )
    )
    return f"""\
# Written by ftpstack.
[Unit]
# Serve only a configuration ftpstack applied, never Debian's default one (the package starts
# proftpd as soon as it is installed).
ConditionPathExists={paths.CONFIGURED}
{storage}
[Service]
# A crashed or killed master comes back by itself.
Restart=on-failure
RestartSec=2s
"""


def health_nft() -> str:
    return f"""\
# Written by ftpstack: the load balancer's probe on {paths.HEALTH_PORT} reaches proftpd on
# {FTP_CONTROL_PORT} while this server is in service. Removing the table drains the server: the
# probe fails, new flows go to the other servers, running sessions continue.
table inet {paths.HEALTH_TABLE}
delete table inet {paths.HEALTH_TABLE}
table inet {paths.HEALTH_TABLE} {{
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    tcp dport {paths.HEALTH_PORT} redirect to :{FTP_CONTROL_PORT}
  }}
}}
"""


def health_unit() -> str:
    return f"""\
# Written by ftpstack.
[Unit]
Description=ftpstack: answer the load balancer's health probe
# Stopped before proftpd at shutdown: the probe fails first, then the server stops.
After=proftpd.service nftables.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/nft -f {paths.HEALTH_NFT}
ExecStop=/bin/sh -c '/usr/sbin/nft delete table inet {paths.HEALTH_TABLE}; \\
  sleep {paths.DRAIN_SECONDS}; {paths.AGENT_COMMAND} settle || true'

[Install]
WantedBy=multi-user.target
"""


def data_disk_script() -> str:
    """Find the data disk on SCSI and NVMe sizes alike, format it only when it is empty, mount it
    at the FTP root. A disk that holds anything but an ftpstack filesystem is never touched."""
    lun = paths.DATA_DISK_LUN
    return f"""\
#!/bin/bash
# Written by ftpstack: the customers' files live on their own disk.
set -euo pipefail
label={paths.DATA_DISK_LABEL}
options=defaults,nofail,x-systemd.device-timeout=120
if ! blkid -L "$label" >/dev/null 2>&1; then
  device=""
  for _ in $(seq 120); do
    # SCSI sizes: waagent's udev links; NVMe sizes: azure-vm-utils' links, else LUN n is the
    # controller's namespace n+2 (namespace 1 is the OS disk).
    for candidate in /dev/disk/azure/scsi1/lun{lun} /dev/disk/azure/data/by-lun/{lun} \\
                     /dev/nvme0n{lun + 2}; do
      if [ -b "$candidate" ]; then device=$(readlink -f "$candidate"); break 2; fi
    done
    sleep 1
  done
  [ -n "$device" ] || {{ echo "ftpstack: no data disk at LUN {lun}" >&2; exit 1; }}
  if [ -n "$(blkid -p -o value -s TYPE "$device" 2>/dev/null)" ] || \\
     [ "$(lsblk -n -o NAME "$device" | wc -l)" -gt 1 ]; then
    echo "ftpstack: $device holds data that is not an ftpstack disk; not formatting it" >&2
    exit 1
  fi
  mkfs.ext4 -q -L "$label" "$device"
fi
grep -q "^LABEL=$label " /etc/fstab || \\
  echo "LABEL=$label {paths.FTP_ROOT} ext4 $options 0 2" >> /etc/fstab
install -d -m 0755 {paths.FTP_ROOT}
mountpoint -q {paths.FTP_ROOT} || mount {paths.FTP_ROOT}
"""


PACKAGES = ("proftpd-core", "proftpd-mod-crypto", "openssl", "nftables")
NFS_PACKAGES = ("nfs-common",)  # with the Azure Files share only


def packages(settings: Settings) -> list[str]:
    """Everything any live configuration may need, so that no later change needs a package:
    mod_tls and openssl are there even while TLS is off."""
    wanted = list(PACKAGES)
    if settings.shared_storage:
        wanted += NFS_PACKAGES
    return wanted


def write_files(settings: Settings, share: NfsShare | None) -> list[dict[str, str]]:
    files = [
        {"path": paths.PROFTPD_DROPIN, "permissions": "0644", "content": proftpd_dropin(settings)}
    ]
    if settings.exposure == "load-balancer":
        files += [
            {"path": paths.HEALTH_NFT, "permissions": "0644", "content": health_nft()},
            {
                "path": f"/etc/systemd/system/{paths.HEALTH_UNIT}",
                "permissions": "0644",
                "content": health_unit(),
            },
        ]
    if settings.data_disk_size_gb and not share:
        files.append(
            {"path": paths.DISK_SCRIPT, "permissions": "0755", "content": data_disk_script()}
        )
    return [{"owner": "root:root", **f} for f in files]


def setup_commands(settings: Settings, share: NfsShare | None) -> list[list[str] | str]:
    uid, group = str(paths.VIRTUAL_UID), paths.VIRTUAL_GROUP
    commands: list[list[str] | str] = [
        f"getent group {group} >/dev/null || groupadd --system --gid {uid} {group}",
        f"getent passwd {group} >/dev/null || useradd --system --uid {uid} --gid {uid} "
        f"--home-dir {paths.FTP_ROOT} --no-create-home --shell /usr/sbin/nologin {group}",
        ["systemctl", "daemon-reload"],
    ]
    if share is not None:
        commands += [
            # The mount point (never the share's own root, once it is mounted there).
            f"mountpoint -q {paths.FTP_ROOT} || install -d -m 0755 {paths.FTP_ROOT}",
            f"grep -q ' {paths.FTP_ROOT} nfs' /etc/fstab || echo '{share.source} {paths.FTP_ROOT} "
            f"nfs {NFS_OPTIONS} 0 0' >> /etc/fstab",
            # The private endpoint's name may take a moment to resolve after the VM boots.
            f"for i in $(seq 60); do mountpoint -q {paths.FTP_ROOT} && break; "
            f"mount {paths.FTP_ROOT} && break; sleep 5; done",
        ]
    else:
        # The share's root is the share's (with root squashed, root could not own it anyway):
        # only a tree on the VM's own storage gets its root made here.
        if settings.data_disk_size_gb:
            commands.append([paths.DISK_SCRIPT])
        commands += [
            ["install", "-d", "-o", "root", "-g", "root", "-m", "0755", paths.FTP_ROOT],
            ["install", "-d", "-o", "root", "-g", "root", "-m", "0700", paths.STATE_DIR],
        ]
    commands += [
        ["install", "-d", "-m", "0755", paths.STATE_MARKERS],
        ["systemctl", "enable", "proftpd"],
    ]
    if settings.exposure == "load-balancer":
        commands.append(["systemctl", "enable", "--now", paths.HEALTH_UNIT])
    commands.append(["touch", paths.BOOTSTRAP_DONE])
    return commands


class _LiteralDumper(yaml.SafeDumper):
    """Multi-line strings as YAML literal blocks, so the user-data reads like the files."""


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_LiteralDumper.add_representer(str, _str_representer)


def cloud_config(settings: Settings, share: NfsShare | None = None) -> str:
    """The #cloud-config user-data of every instance."""
    document = {
        "package_update": True,
        "packages": packages(settings),
        "write_files": write_files(settings, share),
        "runcmd": setup_commands(settings, share),
    }
    body = yaml.dump(
        document, Dumper=_LiteralDumper, sort_keys=False, width=100, default_flow_style=None
    )
    return (
        "#cloud-config\n"
        "# ftpstack bootstrap: packages, storage, unit guards. The configuration (users, limits,\n"
        "# TLS, passive range, keepalive) is applied live by the configuration step.\n" + body
    )
