"""`routatic-asgi status`: read a running server's breakers and credentials, or reset one."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from routatic_asgi.cli.options import KEY_VARIABLE

__all__ = ["add_parser", "status_text"]


def add_parser(commands: Any) -> None:
    status = commands.add_parser("status", help="show every breaker and credential of a server")
    status.add_argument("--url", default="http://127.0.0.1:8787", help="the server's base URL")
    status.add_argument("--key", help=f"a proxy key (default: ${KEY_VARIABLE})")
    status.add_argument("--json", action="store_true", help="print the report as JSON")
    status.add_argument(
        "--reset",
        metavar="NAME",
        help="clear a breaker (provider/model[#N]) or a credential (provider#N; provider: all "
        "its keys; provider#client: clients' own) by hand",
    )
    status.set_defaults(run=_status)


def _status(args: argparse.Namespace) -> int:
    import httpx

    key = args.key or os.environ.get(KEY_VARIABLE)
    headers = {"x-routatic-key": key} if key else {}
    if args.reset:
        return _reset(args.url.rstrip("/") + "/status/reset", headers, args.reset)
    url = args.url.rstrip("/") + "/status"
    try:
        response = httpx.get(url, headers=headers, timeout=10, trust_env=False)
    except httpx.HTTPError as exc:
        print(f"routatic-asgi: cannot reach {url}: {type(exc).__name__}", file=sys.stderr)
        return 1
    if response.status_code != 200:
        print(f"routatic-asgi: {url} answered {response.status_code}", file=sys.stderr)
        return 1
    report = response.json()
    print(json.dumps(report, indent=2) if args.json else status_text(report))
    return 0


def _reset(url: str, headers: dict[str, str], name: str) -> int:
    import httpx

    try:
        response = httpx.post(
            url, headers=headers, json={"reset": name}, timeout=10, trust_env=False
        )
    except httpx.HTTPError as exc:
        print(f"routatic-asgi: cannot reach {url}: {type(exc).__name__}", file=sys.stderr)
        return 1
    if response.status_code != 200:
        try:
            why = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            why = f"{url} answered {response.status_code}"
        print(f"routatic-asgi: {why}", file=sys.stderr)
        return 1
    print("reset: " + ", ".join(response.json()["reset"]))
    return 0


def status_text(report: dict[str, Any]) -> str:
    """Breakers and credentials, one per line, with times as UTC and as time left."""
    now = float(report.get("now") or 0.0)
    degraded = " (degraded: serving from memory)" if report.get("state_degraded") else ""
    lines = [f"state: {report.get('state', '?')}{degraded}", "breakers:"]
    for row in report.get("breakers", []):
        detail = (
            f"  {row['reason']}  failures={row['consecutive_failures']}  {_span(row, now)}"
            if row["state"] != "closed"
            else ""
        )
        lines.append(f"  {row['target']}  {row['state']}{detail}")
    if not report.get("breakers"):
        lines.append("  (none has failed yet)")
    lines.append("credentials:")
    for row in report.get("credentials", []):
        detail = f"  {row['reason']}  {_span(row, now)}" if row["state"] != "ok" else ""
        lines.append(f"  {row['provider']}#{row['index']} {row['key']}  {row['state']}{detail}")
    return "\n".join(lines)


def _span(row: dict[str, Any], now: float) -> str:
    from datetime import UTC, datetime

    def moment(value: float) -> str:
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    since = f"since {moment(row['since'])}" if row.get("since") else ""
    until = row.get("until")
    if until is None:
        return f"{since}  until cleared" if since else ""
    left = max(until - now, 0.0)
    return f"{since}  until {moment(until)} ({left:.0f}s left)"
