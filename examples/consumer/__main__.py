"""A second project that consumes ftpstack: reads its outputs through a StackReference and
publishes the FTP endpoint as an A record in an existing Azure DNS zone (and, if asked, as app
settings of an existing web app), with the SFTP host keys a client pins under the published name.

The names read here are ftpstack's outputs contract (docs/outputs.md,
`ftpstack/outputs.py`); `require_output` fails the deployment loudly if ftpstack ever stops
exporting one, instead of publishing an empty value.
"""

import pulumi
from pulumi_azure_native import dns, web

# ftpstack's outputs contract: the names this project reads.
FTP_ENDPOINT = "ftpEndpoint"
PUBLIC_IP = "publicIp"
PASSIVE_PORT_RANGE = "passivePortRange"
CONTROL_PORT = "controlPort"
SFTP_ENDPOINT = "sftpEndpoint"
SFTP_HOST_KEYS = "sftpHostKeys"

config = pulumi.Config()
source = config.get("ftpStack") or f"{pulumi.get_organization()}/ftpstack/{pulumi.get_stack()}"
ftp = pulumi.StackReference(source)

public_ip = ftp.require_output(PUBLIC_IP)
endpoint = ftp.require_output(FTP_ENDPOINT)
passive_ports = ftp.require_output(PASSIVE_PORT_RANGE)
control_port = ftp.require_output(CONTROL_PORT)
sftp_endpoint = ftp.require_output(SFTP_ENDPOINT)
sftp_host_keys = ftp.require_output(SFTP_HOST_KEYS)

zone = config.require("dnsZoneName")
record_name = config.get("recordName") or "ftp"
record = dns.RecordSet(
    "ftp-record",
    resource_group_name=config.require("dnsResourceGroup"),
    zone_name=zone,
    relative_record_set_name=record_name,
    record_type="A",
    # Short: the public IP survives VM replacement, but a re-created stack gets a new one.
    ttl=300,
    a_records=[dns.ARecordArgs(ipv4_address=public_ip)],
)
host = pulumi.Output.from_input(f"{record_name}.{zone}")
# Numbers cross a StackReference as floats (protobuf has no integers): 21 arrives as 21.0.
url = pulumi.Output.concat("ftp://", host, ":", control_port.apply(lambda p: str(int(p))))
# The SFTP host keys as known_hosts lines under the published name (ftpstack exports them under
# its own FQDN and IP): a client that connects to the record checks exactly these keys.
# `[]` and "" when the stack serves no SFTP.
known_hosts = pulumi.Output.all(host, sftp_host_keys).apply(
    lambda v: "".join(f"{v[0]} {line.split(' ', 1)[1]}\n" for line in v[1])
)
sftp_url = pulumi.Output.all(host, sftp_endpoint).apply(
    lambda v: f"sftp://{v[0]}:{v[1].rsplit(':', 1)[1]}" if v[1] else ""
)

web_app = config.get("webAppName")
if web_app:
    web.WebAppApplicationSettings(
        "ftp-app-settings",
        name=web_app,
        resource_group_name=config.require("webAppResourceGroup"),
        properties={
            "FTP_ENDPOINT": url,
            "FTP_HOST": host,
            "FTP_PASSIVE_PORTS": passive_ports,
            "SFTP_ENDPOINT": sftp_url,
            "SFTP_KNOWN_HOSTS": known_hosts,
        },
    )

pulumi.export("ftpUrl", url)
pulumi.export("ftpHost", host)
pulumi.export("ftpEndpointByIp", endpoint)
pulumi.export("passivePortRange", passive_ports)
pulumi.export("sftpUrl", sftp_url)
pulumi.export("sftpKnownHosts", known_hosts)
