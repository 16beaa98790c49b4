"""Pure helpers of the component: the post-deploy check's command line, the tags the policy pack
reads, the VM's replacement and ignore lists. Each is a function of `Settings`, tested without
Pulumi.
"""

from __future__ import annotations

import shlex

from ftpstack import azure_rules as azure
from ftpstack import paths
from ftpstack.rules import ssh_port
from ftpstack.settings import Settings
from ftpstack.settings.tls import load_chain

# Read by the policy pack before the configuration (which needs the IP) is known.
TAG_TLS = "ftpstack:tls"
TAG_KEEPALIVE_IDLE = "ftpstack:keepalive-idle-seconds"
TAG_KEEPALIVE_INTERVAL = "ftpstack:keepalive-interval-seconds"
TAG_SFTP = "ftpstack:sftp"
# What the stack switched off explicitly of logs, alerts, backups ("none"): the pack accepts a
# production stack without them only so.
TAG_OPTED_OUT = "ftpstack:opted-out"
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
        TAG_SFTP: "on" if settings.sftp else "off",
        TAG_OPTED_OUT: ",".join(settings.opted_out) or "none",
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

    It logs in as its own account (`ftpstack-check`, whose password is part of the stack's
    identity), never as a customer; always over TLS, checking the server's certificate: the
    stack's own certificate pinned (its PEM in FTP_CA_PEM), or a supplied one checked against the
    machine's CAs for the name it carries. With `tls: off` it only waits for FTP's greeting: a
    password never crosses the Internet in clear. With `sftp` it also logs in over SFTP, the
    host key pinned to the stack's (FTP_KNOWN_HOSTS), before any password is sent. It stops at
    once on a refused login: retrying would get the deploying machine banned."""
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
    if settings.tls == "off" and not settings.sftp:
        return argv
    argv += ["--user", paths.CHECK_USER]
    if settings.tls == "off":
        argv.append("--banner-only")
    else:
        argv.append("--tls")
        if settings.tls_certificate:
            argv += ["--server-name", certificate_name(settings)]
    if settings.sftp:
        argv.append("--sftp")
    return argv


def certificate_name(settings: Settings) -> str:
    """The name a supplied certificate is checked for: the stack's DNS name, else the first DNS
    name the certificate carries."""
    if settings.fqdn:
        return settings.fqdn
    from cryptography import x509

    leaf = load_chain(settings.tls_certificate)[0]
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return str(names.get_values_for_type(x509.DNSName)[0])


def smoke_command(settings: Settings, address: str) -> str:
    return shlex.join(smoke_argv(settings, address))


def ssh_target(settings: Settings, instance: int = 0) -> int:
    return ssh_port(settings, instance)
