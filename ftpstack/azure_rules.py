"""What Azure Resource Manager accepts, as tables: ranges, limits, names, immutable properties.

Every rule carries the page that states it. The settings model refuses a stack that breaks one
(before anything is deployed); the offline ARM check (`ftpstack.offline.armcheck`) applies the
same tables to every resource the program declares. Where Azure's own pages disagree, the
stricter reading is kept and the comment says so.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

DOCS = "https://learn.microsoft.com/azure"
LIMITS_PAGE = f"{DOCS}/azure-resource-manager/management/azure-subscription-service-limits"
NAME_RULES_PAGE = f"{DOCS}/azure-resource-manager/management/resource-name-rules"
IDLE_PAGE = f"{DOCS}/load-balancer/load-balancer-tcp-idle-timeout"
PUBLIC_IP_PAGE = f"{DOCS}/virtual-network/ip-services/public-ip-addresses"
NSG_PAGE = f"{DOCS}/virtual-network/network-security-groups-overview"
TAGS_PAGE = f"{DOCS}/azure-resource-manager/management/tag-resources"
PROBE_PAGE = f"{DOCS}/load-balancer/load-balancer-custom-probe-overview"
VNET_FAQ = f"{DOCS}/virtual-network/virtual-networks-faq"
LINUX_FAQ = f"{DOCS}/virtual-machines/linux/faq"
SSH_PAGE = f"{DOCS}/virtual-machines/linux/mac-create-ssh-keys"
NVME_PAGE = f"{DOCS}/virtual-machines/nvme-overview"
VM_REST = "https://learn.microsoft.com/rest/api/compute/virtual-machines/create-or-update"
DISK_REST = "https://learn.microsoft.com/rest/api/compute/disks/create-or-update"
LB_SKUS_PAGE = f"{DOCS}/load-balancer/skus"
LB_PRICING = "https://azure.microsoft.com/pricing/details/load-balancer/"
FILES_PAGE = f"{DOCS}/storage/files/storage-how-to-create-file-share"
REGIONS_SOURCE = "https://github.com/Azure/terraform-azurerm-avm-utl-regions"
ZONES_PAGE = f"{DOCS}/reliability/availability-zones-region-support"


@dataclass(frozen=True)
class Range:
    low: int
    high: int
    source: str

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int) and self.low <= value <= self.high

    def __str__(self) -> str:
        return f"{self.low}-{self.high}"


# -- ranges -------------------------------------------------------------------------------------
# "adjustable inbound originated flow idle timeout of 4-30 minutes" (public IP).
PUBLIC_IP_IDLE_MINUTES = Range(4, 30, PUBLIC_IP_PAGE)
# "an idle timeout range of 4 minutes to 100 minutes for load-balancing rules and inbound NAT
# rules"; older pages and the REST text still say 4-30, which the newer page supersedes.
LB_RULE_IDLE_MINUTES = Range(4, 100, IDLE_PAGE)
# "Outbound rules support an idle timeout range of 4 minutes to 120 minutes".
OUTBOUND_RULE_IDLE_MINUTES = Range(4, 120, IDLE_PAGE)
# "A number between 100 and 4096"; "You can't create two security rules with the same priority
# and direction."
NSG_PRIORITY = Range(100, 4096, NSG_PAGE)
# Health probe interval: "The default value is 15, the minimum value is 5."
PROBE_INTERVAL_SECONDS = Range(
    5,
    2147483647,
    "https://learn.microsoft.com/rest/api/load-balancer/load-balancers/create-or-update",
)
# probeThreshold: consecutive successes or failures that change a backend's state (1-100 per the
# provider docs; Microsoft's pages give no upper bound).
PROBE_THRESHOLD = Range(1, 100, PROBE_PAGE)
# Managed disks: the smallest billed size is 4 GiB (E1/P1), the largest 32,767 GiB.
DISK_GB = Range(4, 32767, DISK_REST)
# "The minimum size for a premium file share is 100 GiB" (provisioned v1); 100 TiB at most.
PREMIUM_SHARE_GB = Range(100, 102400, FILES_PAGE)

# -- limits -------------------------------------------------------------------------------------
# "Each NIC can have a total of 300 rules (load balancing, inbound NAT, and outbound rules
# combined) configured across all IP configurations on the NIC."
RULES_PER_NIC = 300
# "Rules (Load Balancer + Inbound NAT) per resource: 1,500".
RULES_PER_LOAD_BALANCER = 1500
# "NSG rules per NSG: 1,000".
RULES_PER_NSG = 1000
# "Each resource, resource group, and subscription can have a maximum of 50 tag name-value
# pairs." "The tag name has a limit of 512 characters and the tag value has a limit of 256".
TAGS_PER_RESOURCE = 50
TAG_NAME_MAX = 512
TAG_VALUE_MAX = 256
TAG_NAME_FORBIDDEN = "<>%&\\?/"
# Billing: "you are charged only for the number of configured load-balancing and outbound
# rules. Inbound NAT rules are free"; the first five rules are in the base price.
LB_RULES_INCLUDED = 5

# -- names (resource-name-rules) ----------------------------------------------------------------
# The patterns end in \Z where the documents write $: `$` also matches before a final newline, so
# with re.match "demo\n" would pass. Callers use fullmatch as well.
# Resource groups: 1-90 of letters, digits, underscores, hyphens, periods, parentheses; "Can't
# end with period."
RESOURCE_GROUP_NAME = re.compile(r"^[\w\-.()]{0,89}[\w\-()]\Z")
# Public IP DNS label (checkDnsAvailability): ^[a-z][a-z0-9-]{1,61}[a-z0-9]$.
DNS_LABEL = re.compile(r"^[a-z][a-z0-9-]{1,61}[a-z0-9]\Z")
# Linux admin user names: the REST API allows 64 characters but the Linux FAQ says "1 - 32",
# which is also what useradd accepts; lower case so that the OS accepts it as it is.
ADMIN_USERNAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}\Z")
# "The following usernames are not allowed" (Linux FAQ; the REST list omits "video").
RESERVED_ADMIN_USERNAMES = frozenset(
    {
        "1",
        "123",
        "a",
        "actuser",
        "adm",
        "admin",
        "admin1",
        "admin2",
        "administrator",
        "aspnet",
        "backup",
        "console",
        "david",
        "guest",
        "john",
        "owner",
        "root",
        "server",
        "sql",
        "support_388945a0",
        "support",
        "sys",
        "test",
        "test1",
        "test2",
        "test3",
        "user",
        "user1",
        "user2",
        "user3",
        "user4",
        "user5",
        "video",
    }
)
# Accounts every Debian image has; an admin user of that name would collide with them.
SYSTEM_ACCOUNTS = frozenset(
    {
        "daemon",
        "bin",
        "sync",
        "games",
        "man",
        "lp",
        "mail",
        "news",
        "uucp",
        "proxy",
        "www-data",
        "list",
        "irc",
        "nobody",
        "systemd-network",
        "messagebus",
        "sshd",
        "ftp",
        "proftpd",
        "ftpvirtual",
        "ftpanon",
    }
)
# VM sizes: "Standard_" + family, vCPUs, constrained vCPUs, feature letters, accelerator,
# version (vm-naming-conventions), e.g. Standard_B2s, Standard_D2s_v5, Standard_M8-2ms_v2.
VM_SIZE = re.compile(
    r"^(Standard|Basic)_[A-Z]{1,3}[0-9]+(-[0-9]+)?[a-zA-Z]*(_[A-Z][0-9]+)?(_v[0-9]+)?\Z"
)
VM_SIZE_PAGE = f"{DOCS}/virtual-machines/vm-naming-conventions"
# "The newer generations (Ebsv5, Da/Ea/Fav6 and newer) typically support only the NVMe storage
# interface": v6 and newer sizes, and the NVMe Ebsv5/Ebdsv5. Their data disks have no
# /dev/disk/azure/scsi1 links on Debian 12; the bootstrap finds them as NVMe namespaces.
NVME_SIZE = re.compile(
    r"^Standard_([A-Z]+[0-9]+[a-z]*_v([6-9]|[1-9][0-9])|Eb[d]?s?[0-9]+[a-z]*_v5)\Z"
)

# -- resource ids that settings name --------------------------------------------------------------
_GROUP = r"/subscriptions/[^/\s]+/resourceGroups/[^/\s]+/providers/"
# A data disk may be created from a managed disk or a snapshot ("sourceResourceId", create
# option Copy).
DISK_SOURCE_ID = re.compile(_GROUP + r"Microsoft\.Compute/(disks|snapshots)/[^/\s]+", re.IGNORECASE)
# The zone Azure Files' private endpoints register in ("Azure Private Endpoint private DNS zone
# values": privatelink.file.core.windows.net).
PRIVATE_FILES_ZONE = "privatelink.file.core.windows.net"
PRIVATE_DNS_PAGE = f"{DOCS}/private-link/private-endpoint-dns"
PRIVATE_FILES_ZONE_ID = re.compile(
    _GROUP + r"Microsoft\.Network/privateDnsZones/" + re.escape(PRIVATE_FILES_ZONE),
    re.IGNORECASE,
)

# -- networks -----------------------------------------------------------------------------------
# "You cannot add the following address ranges" to a VNet.
VNET_RESERVED = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "224.0.0.0/4",
        "255.255.255.255/32",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "168.63.129.16/32",
    )
)
# "The smallest supported IPv4 subnet is /29, and the largest is /2."
SUBNET_PREFIX = Range(2, 29, VNET_FAQ)
# "Azure reserves 5 IP addresses within each subnet."
SUBNET_RESERVED_ADDRESSES = 5

# -- SSH keys: "RSA ... with a minimum length of 2048 bits" and "ED25519 Keys"; ECDSA is not
# supported.
SSH_KEY_TYPES = ("ssh-ed25519", "ssh-rsa")
SSH_RSA_MIN_BITS = 2048

# -- regions (ARM `name`s of the public cloud; the AVM regions module's weekly capture) -------
REGIONS = frozenset(
    {
        "australiacentral",
        "australiacentral2",
        "australiaeast",
        "australiasoutheast",
        "austriaeast",
        "belgiumcentral",
        "brazilsouth",
        "brazilsoutheast",
        "canadacentral",
        "canadaeast",
        "centralindia",
        "centralus",
        "chilecentral",
        "denmarkeast",
        "eastasia",
        "eastus",
        "eastus2",
        "francecentral",
        "francesouth",
        "germanynorth",
        "germanywestcentral",
        "indonesiacentral",
        "israelcentral",
        "italynorth",
        "japaneast",
        "japanwest",
        "jioindiacentral",
        "jioindiawest",
        "koreacentral",
        "koreasouth",
        "malaysiawest",
        "mexicocentral",
        "newzealandnorth",
        "northcentralus",
        "northeurope",
        "norwayeast",
        "norwaywest",
        "polandcentral",
        "qatarcentral",
        "southafricanorth",
        "southafricawest",
        "southcentralus",
        "southeastasia",
        "southindia",
        "spaincentral",
        "swedencentral",
        "switzerlandnorth",
        "switzerlandwest",
        "uaecentral",
        "uaenorth",
        "uksouth",
        "ukwest",
        "westcentralus",
        "westeurope",
        "westindia",
        "westus",
        "westus2",
        "westus3",
    }
)
REGIONS_WITH_ZONES = frozenset(
    {
        "australiaeast",
        "austriaeast",
        "belgiumcentral",
        "brazilsouth",
        "canadacentral",
        "centralindia",
        "centralus",
        "chilecentral",
        "denmarkeast",
        "eastasia",
        "eastus",
        "eastus2",
        "francecentral",
        "germanywestcentral",
        "indonesiacentral",
        "israelcentral",
        "italynorth",
        "japaneast",
        "japanwest",
        "koreacentral",
        "malaysiawest",
        "mexicocentral",
        "newzealandnorth",
        "northeurope",
        "norwayeast",
        "polandcentral",
        "qatarcentral",
        "southafricanorth",
        "southcentralus",
        "southeastasia",
        "spaincentral",
        "swedencentral",
        "switzerlandnorth",
        "uaenorth",
        "uksouth",
        "westeurope",
        "westus2",
        "westus3",
    }
)


# -- properties ARM refuses to change in place --------------------------------------------------
@dataclass(frozen=True)
class Immutable:
    path: str  # property path in the engine's camelCase, as replaceOnChanges spells it
    source: str


VM_TYPE = "azure-native:compute:VirtualMachine"
DISK_TYPE = "azure-native:compute:Disk"
PUBLIC_IP_TYPE = "azure-native:network:PublicIPAddress"
LB_TYPE = "azure-native:network:LoadBalancer"
STORAGE_ACCOUNT_TYPE = "azure-native:storage:StorageAccount"

# azure-native itself forces a replacement only for a few of these (publicIPAddresses: sku,
# publicIPAddressVersion, location); for VMs and disks it plans an update that ARM then
# refuses with PropertyChangeNotAllowed. Each must be covered by replaceOnChanges (or held
# still by ignoreChanges and changed another way).
IMMUTABLE: dict[str, tuple[Immutable, ...]] = {
    VM_TYPE: (
        Immutable("location", VM_REST),
        Immutable("osProfile.computerName", VM_REST),
        Immutable("osProfile.adminUsername", VM_REST),
        Immutable("osProfile.customData", f"{DOCS}/virtual-machines/custom-data"),
        # "Changing property 'linuxConfiguration.ssh.publicKeys' is not allowed."
        Immutable("osProfile.linuxConfiguration.ssh.publicKeys", LINUX_FAQ),
        Immutable("osProfile.linuxConfiguration.disablePasswordAuthentication", VM_REST),
        Immutable("storageProfile.imageReference", VM_REST),
        Immutable("storageProfile.osDisk.createOption", VM_REST),
        Immutable("zones", VM_REST),
        # "a VM can only be added to availability set at creation time"
        Immutable("availabilitySet", VM_REST),
    ),
    DISK_TYPE: (
        Immutable("location", DISK_REST),
        # "CreationData information cannot be changed after the disk has been created."
        Immutable("creationData", DISK_REST),
        Immutable("zones", DISK_REST),
    ),
    PUBLIC_IP_TYPE: (
        Immutable("location", PUBLIC_IP_PAGE),
        Immutable("sku", LB_SKUS_PAGE),
        Immutable("publicIPAddressVersion", PUBLIC_IP_PAGE),
        # "It is not possible to change the zone of a Public IP address."
        Immutable("zones", PUBLIC_IP_PAGE),
    ),
    LB_TYPE: (Immutable("location", LB_SKUS_PAGE), Immutable("sku", LB_SKUS_PAGE)),
    STORAGE_ACCOUNT_TYPE: (
        Immutable("location", f"{DOCS}/storage/common/storage-account-overview"),
        # "You can't change a storage account to a different type after it's created."
        Immutable("kind", f"{DOCS}/storage/common/storage-account-overview"),
        # "Converting your storage account to zone-redundancy ... is not supported if ... the
        # storage account contains Azure Files NFSv4.1 shares"; premium accounts convert only
        # through a support request.
        Immutable("sku", f"{DOCS}/storage/common/redundancy-migration"),
    ),
}
# What azure-native replaces on its own (provider/pkg/gen/replacement.go forceNewMap).
PROVIDER_FORCE_NEW: dict[str, tuple[str, ...]] = {
    PUBLIC_IP_TYPE: ("location", "publicIPAddressVersion", "publicIPPrefix", "sku"),
    "azure-native:network:VirtualNetwork": ("location",),
    "azure-native:network:PrivateEndpoint": ("subnet",),
    STORAGE_ACCOUNT_TYPE: ("isHnsEnabled", "location"),
    "azure-native:resources:ResourceGroup": ("location",),
    "azure-native:storage:FileShare": ("enabledProtocols",),
}
# Every resource stays in the region it was created in ("move" means a new resource): a located
# resource must be replaced when its location changes.
LOCATION = Immutable(
    "location", f"{DOCS}/azure-resource-manager/management/move-resource-group-and-subscription"
)
# A disk may grow in place but never shrink: "can only increase the disk's size".
DISK_SIZE_GROWS_ONLY = ("diskSizeGB", DISK_REST)


def tag_name_problem(name: str) -> str | None:
    """Why Azure refuses this tag name, or None."""
    if not name or len(name) > TAG_NAME_MAX:
        return f"tag names are 1-{TAG_NAME_MAX} characters"
    bad = sorted({c for c in name if c in TAG_NAME_FORBIDDEN or ord(c) < 32})
    if bad:
        return f"tag names can't contain {' '.join(repr(c) for c in bad)}"
    return None


def vnet_reserved_overlap(network: ipaddress.IPv4Network) -> ipaddress.IPv4Network | None:
    """The reserved range a VNet address space overlaps, if any."""
    return next((r for r in VNET_RESERVED if network.overlaps(r)), None)
