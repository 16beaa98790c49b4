"""The stack outputs contract: names that `__main__.py` exports and consumers read.

Other projects read these with `pulumi.StackReference(...).get_output(outputs.FTP_ENDPOINT)`;
renaming one breaks them, so the names live here, once, and tests import them. `CONTRACT` says
what each one holds: docs/outputs.md's table is generated from it (`make docs`).
"""

from typing import Literal, NamedTuple

FTP_ENDPOINT = "ftpEndpoint"
PUBLIC_IP = "publicIp"
FQDN = "fqdn"
CONTROL_PORT = "controlPort"
PASSIVE_PORT_RANGE = "passivePortRange"
VM_ID = "vmId"
VM_NAME = "vmName"
RESOURCE_GROUP_NAME = "resourceGroupName"
INSTANCES = "instances"
SFTP_ENDPOINT = "sftpEndpoint"
SFTP_HOST_KEYS = "sftpHostKeys"


class Output(NamedTuple):
    """What a consumer gets: its type (as JSON names it) and its meaning (markdown)."""

    type: Literal["string", "integer", "list"]
    meaning: str


CONTRACT: dict[str, Output] = {
    FTP_ENDPOINT: Output("string", "`ftp://<fqdn or public IP>:21`"),
    PUBLIC_IP: Output(
        "string", "the static public IP; clients connect here, and PASV replies name it"
    ),
    FQDN: Output("string", '`<dnsLabel>.<region>.cloudapp.azure.com`, or `""` without a DNS label'),
    CONTROL_PORT: Output("integer", "`21`"),
    PASSIVE_PORT_RANGE: Output(
        "string", '`"50000-50099"`, as opened in the NSG and split over the instances'
    ),
    VM_ID: Output("string", "Azure resource id of the first VM (`ftp-vm`)"),
    VM_NAME: Output("string", "the first VM's name"),
    RESOURCE_GROUP_NAME: Output("string", "the resource group holding everything"),
    INSTANCES: Output(
        "list",
        'one entry per VM, in order (`ftp-vm`, `ftp-vm-1`, …): `{"name", "privateIp", '
        '"passivePorts"}`, all strings; `passivePorts` is the slice of `passivePortRange` that '
        'this server announces and alone receives (`"50000-50049"`), the whole range with one '
        "instance",
    ),
    SFTP_ENDPOINT: Output("string", '`sftp://<fqdn or public IP>:22`, or `""` with `sftp: false`'),
    SFTP_HOST_KEYS: Output(
        "list",
        "the server's SSH host keys as `known_hosts` lines under its FQDN and public IP "
        "(ed25519, ECDSA, RSA): the same on every instance and after every replacement, for a "
        "client to pin; `[]` with `sftp: false`",
    ),
}

ALL = tuple(CONTRACT)
