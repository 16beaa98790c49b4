"""Where things live on the VM: the one list of paths, accounts and ports the bootstrap, the live
configuration, the apply agent's input and the local stand-ins share.

Layout: the FTP tree is on storage that outlives the VM (the data disk, or the shared Azure Files
share with several instances), and so is the server's self-signed TLS identity (in a root-only
directory beside the users' homes, out of every user's reach: each is jailed to its home). What
is written on every apply lives on the OS disk and is rewritten by the next apply.
"""

from __future__ import annotations

FTP_ROOT = "/srv/ftp"
# The FTP tree holds data only: nothing there runs, no device node or setuid bit counts.
FTP_TREE_MOUNT_OPTIONS = ("nosuid", "nodev", "noexec")
PUBLIC_DIR = f"{FTP_ROOT}/public"
# Made by the bootstrap on the storage; it once held the self-signed TLS identity (its key was
# readable by any host that mounted the share), which the agent now removes (LEGACY_TLS_DIR).
STATE_DIR = f"{FTP_ROOT}/.ftpstack"
LEGACY_TLS_DIR = f"{STATE_DIR}/tls"

PROFTPD_CONF = "/etc/proftpd/proftpd.conf"
USERS_FILE = "/etc/proftpd/ftpd.passwd"
GROUPS_FILE = "/etc/proftpd/ftpd.group"
TLS_DIR = "/etc/proftpd/tls"
# The stack's own TLS identity (ftpstack.identity: made once, kept in the Pulumi state), on the OS
# disk, root only; the same on every instance and after every replacement.
SELF_SIGNED_CERT = f"{TLS_DIR}/ftpstack.crt"
SELF_SIGNED_KEY = f"{TLS_DIR}/ftpstack.key"
# The post-deploy check's own account (its password is part of the identity): it logs in and
# transfers in its own home, never as a customer.
CHECK_USER = "ftpstack-check"
SYSCTL_FILE = "/etc/sysctl.d/60-ftpstack-keepalive.conf"
# Replaces Debian's own file, whose postrotate restarts proftpd (cutting every transfer).
LOGROTATE_FILE = "/etc/logrotate.d/proftpd-core"
LOG_DIR = "/var/log/proftpd"
# Transfers and logins as JSON, one object a line (what the agent ships: ftpstack.logschema).
TRANSFER_JSON, LOGIN_JSON = "transfer.json", "login.json"
LOGS = (
    "proftpd.log",
    "xferlog",
    "auth.log",
    "tls.log",
    "ban.log",
    "controls.log",
    TRANSFER_JSON,
    LOGIN_JSON,
)
PID_FILE = "/run/proftpd.pid"
# ftpdctl's socket (lifting a ban, ending sessions): root only.
CONTROLS_SOCKET = "/run/proftpd.sock"
SYSTEM_LOG = f"{LOG_DIR}/proftpd.log"

# The one OS account that owns every virtual user's files; fixed so the users file can name it.
VIRTUAL_UID = 2001
VIRTUAL_GROUP = "ftpvirtual"
# Anonymous sessions run as their own uid, which owns nothing: read-only by file permissions
# too, not only by proftpd's <Limit WRITE>.
ANON_UID = 2002
ANON_USER = "ftpanon"

# The apply agent, written by every configuration run (it is not part of the boot image).
AGENT_DIR = "/usr/local/lib/ftpstack"
AGENT_PATH = f"{AGENT_DIR}/agent.py"
AGENT_COMMAND = f"/usr/bin/python3 {AGENT_PATH}"
STATE_MARKERS = "/var/lib/ftpstack"
# The bootstrap writes this last; the agent waits for it.
BOOTSTRAP_DONE = f"{STATE_MARKERS}/bootstrap-done"
# proftpd's unit starts only once a configuration was applied (ConditionPathExists).
CONFIGURED = f"{STATE_MARKERS}/configured"
APPLIED = f"{STATE_MARKERS}/applied.json"

# systemd drop-in for proftpd.service: wait for the configuration and the FTP tree's storage,
# restart when it dies.
PROFTPD_DROPIN = "/etc/systemd/system/proftpd.service.d/ftpstack.conf"

# The load balancer probes this port; the VM forwards it to 21 while it is in service, and
# stops forwarding it to drain (new flows go elsewhere, running sessions continue).
HEALTH_PORT = 10021
HEALTH_NFT = f"{AGENT_DIR}/health.nft"
HEALTH_UNIT = "ftpstack-health.service"
HEALTH_TABLE = "ftpstack_health"
# How long a stopping VM stays out of the probe before proftpd stops: two failed probes at 5 s.
DRAIN_SECONDS = 12

# When the FTP tree's storage was not mounted at boot (proftpd then stays down), this timer tries
# the mount again and starts proftpd once it holds: the server rejoins by itself.
REJOIN_SERVICE = "/etc/systemd/system/ftpstack-rejoin.service"
REJOIN_TIMER = "/etc/systemd/system/ftpstack-rejoin.timer"
REJOIN_SECONDS = 30
REJOIN_BOOT_SECONDS = 120  # the first try after a boot: its own mounts had their chance

# Azure's udev rules name a data disk by its LUN; the VM attaches the data disk at this LUN.
DATA_DISK_LUN = 0
DATA_DISK_LABEL = "ftpdata"
DISK_SCRIPT = "/usr/local/sbin/ftpstack-data-disk"
