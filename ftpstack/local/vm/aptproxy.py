"""The L4 VM's package proxy: the guest's apt reaches only the Debian archive the host uses.

An HTTP proxy serves on a unix socket of the host (so the machine's own firewall and routes are
untouched) and fetches only from the host's Debian archive hosts (`image.archive_hosts()`); a
relay (`python -m ftpstack.local.vm.relay`) in the router namespace accepts the guest's connections
on the router's address of the first VM's link, port 3142, which the test image's apt uses as
its proxy (every other instance reaches it through its own gateway, the router). The router's own
input chain drops everything, so one rule lets exactly that port in from the VMs' links;
`allow()` puts it back after the router's ruleset was published anew.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import shutil
import socketserver
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

from ftpstack.local.net.azure import LocalAzure
from ftpstack.local.net.netns import StandIn, end_process, run
from ftpstack.local.net.topology import VM_NETS
from ftpstack.local.vm.image import PROXY_PORT, archive_hosts
from ftpstack.offline.plan import PROJECT_DIR

PASSED_REQUEST = {"range", "if-modified-since", "if-range", "cache-control"}
PASSED_RESPONSE = {"content-length", "content-type", "last-modified", "etag", "content-range"}


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    allowed: ClassVar[set[str]] = set()

    def log_message(self, format: str, *args: object) -> None:
        pass  # apt's requests are not the test's output

    def address_string(self) -> str:
        return "guest"  # a unix socket has no peer address

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.scheme != "http" or url.hostname not in self.allowed:
            self.send_error(403, "only the Debian archive")
            return
        conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() in PASSED_REQUEST}
        try:
            conn.request("GET", url.path + (f"?{url.query}" if url.query else ""), headers=headers)
            response = conn.getresponse()
            self.send_response(response.status)
            for name, value in response.getheaders():
                if name.lower() in PASSED_RESPONSE:
                    self.send_header(name, value)
            self.end_headers()
            shutil.copyfileobj(response, self.wfile, 1 << 16)
        except OSError as error:
            with contextlib.suppress(OSError):
                self.send_error(502, str(error))
        finally:
            conn.close()


class AptProxy(StandIn):
    """`with AptProxy(az): ...` while the guest's apt may run."""

    def __init__(self, az: LocalAzure) -> None:
        self.az = az
        self.directory = Path(tempfile.mkdtemp(prefix="ftpstack-apt-"))
        self.server: _UnixHTTPServer | None = None
        self.relay: subprocess.Popen[str] | None = None

    @property
    def socket_path(self) -> Path:
        return self.directory / "proxy.sock"

    def start(self) -> None:
        _ProxyHandler.allowed = archive_hosts()
        self.server = _UnixHTTPServer(str(self.socket_path), _ProxyHandler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.relay = self.az.router.popen(
            sys.executable,
            "-m",
            "ftpstack.local.vm.relay",
            "--listen",
            f"{VM_NETS[0][1]}:{PROXY_PORT}",
            "--to",
            str(self.socket_path),
            stdout=subprocess.DEVNULL,
            cwd=PROJECT_DIR,
        )
        self.az.router.wait_listening(PROXY_PORT, self.relay)
        self.allow()

    def allow(self) -> None:
        """Let the VMs' links reach the relay on the router (idempotent)."""
        router = self.az.router.name
        links = ", ".join(f"v{i}r" for i in range(self.az.topology.instances))
        chain = run(
            "ip", "netns", "exec", router, "nft", "list", "chain", "inet", "azure", "router"
        )
        if f"dport {PROXY_PORT} accept" in chain:
            return
        run(
            "ip",
            "netns",
            "exec",
            router,
            "nft",
            "insert",
            "rule",
            "inet",
            "azure",
            "router",
            "iifname",
            f"{{ {links} }}",
            "tcp",
            "dport",
            str(PROXY_PORT),
            "accept",
        )

    def close(self) -> None:
        if self.relay is not None:
            end_process(self.relay, timeout=5)
            self.relay = None
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        shutil.rmtree(self.directory, ignore_errors=True)
