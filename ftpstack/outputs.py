"""The stack outputs contract: names that `__main__.py` exports and consumers read.

Other projects read these with `pulumi.StackReference(...).get_output(outputs.FTP_ENDPOINT)`;
renaming one breaks them, so the names live here, once, and tests import them.
"""

FTP_ENDPOINT = "ftpEndpoint"  # str: ftp://<fqdn or public IP>:21
PUBLIC_IP = "publicIp"  # str: the static public IP clients connect to (and MasqueradeAddress)
FQDN = "fqdn"  # str: <dnsLabel>.<region>.cloudapp.azure.com, "" without a DNS label
CONTROL_PORT = "controlPort"  # int: 21
PASSIVE_PORT_RANGE = "passivePortRange"  # str: "50000-50099", as opened in the NSG
VM_ID = "vmId"  # str: the Azure resource id of the VM
VM_NAME = "vmName"  # str: the VM's name in Azure
RESOURCE_GROUP_NAME = "resourceGroupName"  # str: where everything lives
# list: one {name, privateIp, passivePorts} per instance (passivePorts: the slice it announces)
INSTANCES = "instances"

ALL = (
    FTP_ENDPOINT,
    PUBLIC_IP,
    FQDN,
    CONTROL_PORT,
    PASSIVE_PORT_RANGE,
    VM_ID,
    VM_NAME,
    RESOURCE_GROUP_NAME,
    INSTANCES,
)
