"""A TCP-to-unix-socket relay, run inside a namespace: what it accepts on `--listen` it pipes to
the unix socket `--to` (a server in the host's own network namespace).

    python -m ftpstack.local.vm.relay --listen 192.0.2.1:3142 --to /tmp/ftpstack-apt-x/proxy.sock

The L4 VM's apt reaches the host-side package proxy this way: the relay listens in the router
namespace, on the router's address of the VM's link, and the proxy's socket is a file, so the
machine's own firewall and routes are never touched. It prints `listening` once bound.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
import threading

BUFFER = 1 << 16


def pipe(source: socket.socket, sink: socket.socket) -> None:
    """Copy until `source` ends, then end both directions (the other pipe stops too)."""
    try:
        while data := source.recv(BUFFER):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def serve(listen: tuple[str, int], target: str) -> None:
    with socket.create_server(listen, reuse_port=False, backlog=32) as listener:
        print("listening", flush=True)
        while True:
            client, _ = listener.accept()
            upstream = socket.socket(socket.AF_UNIX)
            try:
                upstream.connect(target)
            except OSError:
                client.close()
                upstream.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=pipe, args=(a, b), daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ftpstack.local.vm.relay")
    parser.add_argument("--listen", required=True, help="ADDRESS:PORT to accept on")
    parser.add_argument("--to", required=True, help="the unix socket to relay to")
    args = parser.parse_args(argv)
    host, port = args.listen.rsplit(":", 1)
    serve((host, int(port)), args.to)
    return 0


if __name__ == "__main__":
    sys.exit(main())
