"""ftpstack: proftpd on Azure that works through Azure's network, and changes live.

The package in three parts; the product never imports the other two.

What is deployed (`ftpstack/`):
    settings/   the one validated model of the stack config (types, errors, TLS checks)
    config      the engine's config strings -> Settings; plaintext secrets refused
    azure_rules what Azure Resource Manager accepts: ranges, limits, names, immutables, sources
    paths       where things live on the VM (shared by everything below)
    rules       NSG rules, passive slices, NAT rules (pure)
    render      the live files: proftpd.conf, users file, sysctl, logrotate, TLS (pure)
    bootstrap   the secret-free cloud-init user-data a VM boots with (pure)
    live        the live configuration's bundle and the Run Command script that carries it
    agent/      runs on the VM (with paths only): applies a bundle atomically, reloads, drains,
                lifts bans
    checks      the post-deploy check's command, VM tags, replacement lists (pure)
    parts, instance, storage, component
                the FtpServer component and the builders of its azure-native resources
    outputs     the names other stacks read through StackReference
    ftpcheck    the smoke check, deployed as `python -m ftpstack.ftpcheck`

What reads the declared plan offline (`ftpstack/offline/`): plan (the program under mocks),
errors (`PlanError`), stackfile (stack files as the Pulumi CLI reads them), standins (TLS
stand-ins for `secure:` keys), declared (the one vocabulary of a plan), report, show (`make plan`:
plan + report), diff, armcheck, costs, project (Pulumi.yaml), reference (the generated
docs: docs/configuration.md, the outputs table).

What stands in for Azure locally (`ftpstack/local/`), by what each part stands in for:
    net/    the local Azure network model: netns (namespaces and the `StandIn` lifecycle),
            topology (the addresses and the router's nftables: public IP / load balancer, NSG,
            idle timeout), azure (`LocalAzure`), prober, steps (a deployment's order), vmhost (a
            VM and the Run Command stand-in), files (the Azure Files NFS share and the VNet's
            resolver), server (L2), client (FTP clients as a CLI)
    vm/     the L4 VM and `make up-local`: image, qemu (one VM), qga (its guest agent),
            deployment (every instance), aptproxy, relay, uplocal
    bench/  `make bench`: suite (the entry point), live, ha, peers
"""
