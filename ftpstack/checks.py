"""Pure helpers of the component: the post-deploy check's command line, the tags the policy pack
reads, the VM's replacement and ignore lists. Each is a function of `Settings`, tested without
Pulumi.
"""

from __future__ import annotations

import shlex

from ftpstack import azure_rules as azure
from ftpstack.rules import ssh_port
from ftpstack.settings import Settings

# Read by the policy pack before the configuration (which needs the IP) is known.
TAG_TLS = "ftpstack:tls"
TAG_KEEPALIVE_IDLE = "ftpstack:keepalive-idle-seconds"
TAG_KEEPALIVE_INTERVAL = "ftpstack:keepalive-interval-seconds"
# Azure refuses to change the SSH key in the VM model; the configuration step keeps
# authorized_keys current instead, so a key rotation neither fails nor replaces the VM.
VM_IGNORED = ("osProfile.linuxConfiguration.ssh.publicKeys",)
PYTHON = "venv/bin/python"


def vm_tags(settings: Settings) -> dict[str, str]:
    return {
        **settings.tags,
        TAG_TLS: settings.tls,
        TAG_KEEPALIVE_IDLE: str(settings.keepalive_idle_seconds),
        TAG_KEEPALIVE_INTERVAL: str(settings.keepalive_interval_seconds),
    }


# A new data disk (a restore, a zone move: `dataDiskSourceId`) would otherwise be swapped under
# the mounted file system; a new VM mounts it at boot.
VM_REPLACED_WITH_ITS_DISK = "storageProfile.dataDisks"


def vm_replaced_on() -> list[str]:
    """Every VM property ARM refuses to change in place, except those held still on purpose, and
    the data disk it attaches."""
    immutable = [i.path for i in azure.IMMUTABLE[azure.VM_TYPE] if i.path not in VM_IGNORED]
    return [*immutable, VM_REPLACED_WITH_ITS_DISK]


def smoke_argv(settings: Settings, address: str) -> list[str]:
    """`python -m ftpstack.ftpcheck …` as the post-deploy check runs it against `address`.

    Encrypted whenever the server offers TLS (a password never crosses the Internet in clear
    when it need not); the certificate may be the self-signed one, so this checks serving, not
    trust. Stops at once on a refused login: retrying a wrong password would get the deploying
    machine banned."""
    argv = [
        PYTHON,
        "-m",
        "ftpstack.ftpcheck",
        "--host",
        address,
        "--expect-public-ip",
        address,
        "--expect-passive-range",
        f"{settings.passive_port_start}-{settings.passive_port_end}",
        "--wait",
        str(settings.post_deploy_wait_seconds),
    ]
    if settings.tls != "off":
        argv += ["--tls", "--no-verify"]
    if settings.users:
        argv += ["--user", settings.users[0].name]
    return argv


def smoke_command(settings: Settings, address: str) -> str:
    return shlex.join(smoke_argv(settings, address))


def ssh_target(settings: Settings, instance: int = 0) -> int:
    return ssh_port(settings, instance)
