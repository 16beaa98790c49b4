"""ftpstack: proftpd on Azure that keeps working through Azure's network (see README.md)."""

import sys

import pulumi

from ftpstack import outputs
from ftpstack.component import FtpServer, FtpServerArgs
from ftpstack.config import settings_from_pulumi
from ftpstack.settings import SettingsError

try:
    settings = settings_from_pulumi()
except SettingsError as error:
    # One line for people, exit code 2, and not a single resource registered.
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)

server = FtpServer("ftp", FtpServerArgs(settings=settings))

pulumi.export(outputs.FTP_ENDPOINT, server.ftp_endpoint)
pulumi.export(outputs.PUBLIC_IP, server.public_ip)
pulumi.export(outputs.FQDN, server.fqdn)
pulumi.export(outputs.CONTROL_PORT, server.control_port)
pulumi.export(outputs.PASSIVE_PORT_RANGE, server.passive_port_range)
pulumi.export(outputs.VM_ID, server.vm_id)
pulumi.export(outputs.VM_NAME, server.vm_name)
pulumi.export(outputs.RESOURCE_GROUP_NAME, server.resource_group_name)
pulumi.export(outputs.INSTANCES, server.instances)
pulumi.export(outputs.SFTP_ENDPOINT, server.sftp_endpoint)
pulumi.export(outputs.SFTP_HOST_KEYS, server.sftp_host_keys)
