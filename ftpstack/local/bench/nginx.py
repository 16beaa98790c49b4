"""The throughput section's anchor: nginx, Debian's own package with its defaults, serving the FTP
user's directory of the VM (the very file proftpd serves) on two ports of the passive range, so
its connections take the FTP data connections' path through the router (public address, NSG,
DNAT, conntrack):

- HTTP: `sendfile on` (as Debian's nginx.conf has it, and as proftpd sends a file);
- HTTPS: TLS 1.3 only, with the stack's own certificate and key (the files proftpd's mod_tls
  serves: the same certificate type, ECDSA P-256), nginx's defaults otherwise (`ssl_buffer_size`
  16k: full-size TLS records).

Everything nginx writes stays in the VM's private /run; it runs in the foreground (`daemon off`),
one worker, and is ended by the PID of its master.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from ftpstack import paths
from ftpstack.local.net.azure import LocalAzure
from ftpstack.local.net.netns import NetnsError, end_process

NGINX_DIR = "/run/ftpstack-bench-nginx"  # inside the VM (its /run is a private tmpfs)


def config(root: str, http_port: int, https_port: int) -> str:
    temp = "".join(
        f"  {kind}_temp_path {NGINX_DIR}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""daemon off;
master_process on;
worker_processes 1;
user root;
pid {NGINX_DIR}/nginx.pid;
error_log {NGINX_DIR}/error.log warn;
events {{
  worker_connections 64;
}}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  default_type application/octet-stream;
{temp}  server {{
    listen {http_port};
    root {root};
  }}
  server {{
    listen {https_port} ssl;
    root {root};
    ssl_certificate {paths.SELF_SIGNED_CERT};
    ssl_certificate_key {paths.SELF_SIGNED_KEY};
    ssl_protocols TLSv1.3;
  }}
}}
"""


def start(az: LocalAzure, root: str, http_port: int, https_port: int) -> subprocess.Popen[str]:
    """nginx in the first VM serving `root` (a VM path) on both ports; its master process."""
    vm = az.vms[0]
    vm.write(f"{NGINX_DIR}/nginx.conf", config(root, http_port, https_port))
    done = vm.exec("nginx", "-t", "-q", "-e", f"{NGINX_DIR}/error.log", "-c",
                   f"{NGINX_DIR}/nginx.conf")  # fmt: skip
    if done.returncode != 0:
        raise NetnsError(f"nginx -t: {done.stderr.strip()}")
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    proc = vm.popen(
        "nginx", "-e", f"{NGINX_DIR}/error.log", "-c", f"{NGINX_DIR}/nginx.conf", **quiet
    )
    try:
        for port in (http_port, https_port):
            az.vm_netns(0).wait_listening(port, proc, vm.path(f"{NGINX_DIR}/error.log"))
    except BaseException:
        end_process(proc, timeout=5)
        raise
    return proc


def certificate(az: LocalAzure, stage: Path) -> Path:
    """The stack's certificate (proftpd's and nginx's), copied where curl reads it: `--cacert`."""
    pinned = stage / "ftpstack.crt"
    pinned.write_text(az.vms[0].path(paths.SELF_SIGNED_CERT).read_text())
    return pinned


def worker(master: subprocess.Popen[str]) -> int:
    """The one worker process of nginx's `master` (which starts it after it listens)."""
    deadline = time.monotonic() + 5
    while True:
        children = Path(f"/proc/{master.pid}/task/{master.pid}/children").read_text().split()
        if len(children) == 1:
            return int(children[0])
        if time.monotonic() > deadline:
            raise NetnsError(f"nginx {master.pid} has {len(children)} workers, not one")
        time.sleep(0.05)
