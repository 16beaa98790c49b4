"""The configuration agent: runs on the VM and applies a live configuration atomically, or not at
all. It needs Python's standard library and `ftpstack.paths` only, and arrives with every
configuration run (Azure's managed Run Command: the script of `ftpstack.live` installs this
package, with `ftpstack/paths.py`, under /usr/local/lib/ftpstack, and runs it as root through the
launcher /usr/local/lib/ftpstack/agent.py). It reads its input from the environment:
`FTPSTACK_CONFIG` (a protected parameter: base64 of zlib-compressed JSON, the bundle of
`ftpstack.live`) and `FTPSTACK_PHASE`:

- `apply`: wait for the bootstrap, stage every changed file beside its target, `proftpd
  --configtest` the candidate proftpd.conf, swap the files in with atomic renames, end the
  sessions of removed users, reload proftpd (SIGHUP) only when its configuration changed, start
  it the first time. Any failure leaves the running configuration as it was and exits non-zero
  (the deployment fails).
- `narrow` (with `FTPSTACK_PASSIVE=first-last`): before the network stops forwarding part of the
  passive range, announce only the ports that stay forwarded, and end the sessions that were
  started with the wider range once they are idle.

By hand, as root: `agent.py reload | drain | undrain | settle | rejoin | unban <address> | status |
release`.

Modules: `base` (failure, output, commands), `files` (staging and atomic swaps, the TLS
identity), `proftpd` (the daemon: reload, start, sessions, the load balancer's probe), `apply`
(the two phases), `__main__` (the command line).
"""
