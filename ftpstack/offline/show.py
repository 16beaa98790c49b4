"""`make plan`: the stack evaluated offline (`plan`) and shown (`report`): for people a summary
(`--full`, `make plan-full`: with the resources' options whole and every rendered file), or as
one JSON document for tools (`--json`). Exits 2 when the config is refused (one line on stderr),
3 when the ARM check finds a problem, else 0.

    python -m ftpstack.offline.show [--stack dev] [--full | --json] [--stack-file F] [--secrets F]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ftpstack.offline import report
from ftpstack.offline.errors import PlanError
from ftpstack.offline.plan import plan_stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make plan", description="Evaluate the stack offline and show what it declares."
    )
    parser.add_argument("--stack", default="dev", help="reads Pulumi.<stack>.yaml (default: dev)")
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="one JSON document, for tools")
    shown.add_argument(
        "--full",
        action="store_true",
        help="the summary with the resources' options whole, then the rendered files "
        "(cloud-init user-data, each instance's live configuration)",
    )
    parser.add_argument(
        "--stack-file", type=Path, help="plan this config file instead of Pulumi.<stack>.yaml"
    )
    parser.add_argument(
        "--secrets",
        type=Path,
        help="decrypted secret values for offline checks (keep it out of git): "
        "config: {ftpstack:tlsPrivateKey: ..., ftpstack:users[0].password: ...}",
    )
    args = parser.parse_args(argv)
    stack = (
        args.stack_file.name.removeprefix("Pulumi.").removesuffix(".yaml")
        if args.stack_file
        else args.stack
    )
    try:
        plan = plan_stack(stack, stack_file=args.stack_file, secrets_file=args.secrets)
    except PlanError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    findings = report.arm_findings(plan)
    if args.json:
        json.dump({**plan.to_json(), **report.extras(plan)}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(report.render_text(plan, full=args.full))
    if findings:
        print(f"error: the ARM check found {len(findings)} problem(s); see above", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
