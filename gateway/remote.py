"""CLI commands that talk to a govgate server: login, contract propose/publish/deprecate, change, audit.

They read GOVGATE_URL and GOVGATE_TOKEN (or --url / --token, or what `govgate login` stored),
print a human summary or, with --format json, what the server answered. Exit codes: 0 done,
1 refused for a reason the output names (blocking findings, a broken audit chain, 4xx),
2 the input or the server could not be reached or read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

CREDENTIALS = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "govgate" / "credentials.json"


class ServerError(Exception):
    """The server answered with a problem, or could not be reached."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(body.get("detail", body) if isinstance(body, dict) else body)
        self.status = status
        self.body = body


def add_commands(commands: Any) -> None:
    """Register the remote commands on the `govgate` parser."""
    login = commands.add_parser("login", help="store a server URL and token for the other commands")
    _common(login)

    contract = commands.add_parser("contract", help="propose, publish and deprecate contract versions")
    contract_commands = contract.add_subparsers(dest="contract_command", required=True)
    propose = contract_commands.add_parser("propose", help="propose a version (opens a change request)")
    propose.add_argument("file", type=Path, help="the OpenAPI document or event JSON Schema (YAML or JSON)")
    propose.add_argument("--contract", required=True, help="the contract's name")
    propose.add_argument("--version", help="the version (an OpenAPI document's info.version by default)")
    publish = contract_commands.add_parser("publish", help="publish an approved version (admin)")
    publish.add_argument("name")
    publish.add_argument("version")
    deprecate = contract_commands.add_parser("deprecate", help="deprecate a published version (admin)")
    deprecate.add_argument("name")
    deprecate.add_argument("version")
    deprecate.add_argument("--sunset", required=True, help="date after which the gateway answers 410 (YYYY-MM-DD)")
    deprecate.add_argument("--successor", help="the version callers should move to")

    change = commands.add_parser("change", help="show, approve or reject change requests")
    change_commands = change.add_subparsers(dest="change_command", required=True)
    for name, text in (("show", "show a change request"), ("approve", "approve (board)"), ("reject", "reject (board)"),
                       ("withdraw", "withdraw (the proposer or an admin)")):
        command = change_commands.add_parser(name, help=text)
        command.add_argument("id")
        if name != "show":
            command.add_argument("--comment", default="", help="why")

    consumer = commands.add_parser("consumer", help="manage the channels that call governed APIs (admin)")
    consumer_commands = consumer.add_subparsers(dest="consumer_command", required=True)
    create = consumer_commands.add_parser("create", help="register a consumer; prints its client secret once")
    create.add_argument("id")
    create.add_argument("--plan", required=True)
    create.add_argument("--scope", action="append", default=[], help="a scope its tokens may carry (repeatable)")
    create.add_argument("--name", default="")
    consumer_commands.add_parser("list", help="list consumers")
    subscribe = consumer_commands.add_parser("subscribe", help="let a consumer call a contract major")
    subscribe.add_argument("id")
    subscribe.add_argument("contract_major", metavar="CONTRACT@MAJOR", help="e.g. erp.sales-orders@1")
    api_key = consumer_commands.add_parser("api-key", help="issue an API key; prints it once")
    api_key.add_argument("id")
    plan = commands.add_parser("plan", help="manage plans: rate, burst, daily quota, priority class (admin)")
    plan_commands = plan.add_subparsers(dest="plan_command", required=True)
    plan_set = plan_commands.add_parser("set", help="create or replace a plan")
    plan_set.add_argument("name")
    plan_set.add_argument("--rate", type=float, required=True, help="requests per second")
    plan_set.add_argument("--burst", type=int, required=True)
    plan_set.add_argument("--quota-per-day", type=int)
    plan_set.add_argument("--priority", default="normal", help="priority class, e.g. checkout, batch")
    plan_commands.add_parser("list", help="list plans")

    audit = commands.add_parser("audit", help="the audit log")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    audit_commands.add_parser("verify", help="check that no audit record was edited or deleted")
    for parser in (propose, publish, deprecate, *change_commands.choices.values(), *audit_commands.choices.values(),
                   *consumer_commands.choices.values(), *plan_commands.choices.values()):
        _common(parser)


def run(args: argparse.Namespace) -> int:
    """Run a remote command."""
    try:
        url, token = credentials(args)
        if args.command == "login":
            return _login(url, token)
        handler = {"contract": _contract, "change": _change, "audit": _audit, "consumer": _consumer,
                   "plan": _plan}[args.command]
        return handler(args, url, token)
    except ServerError as exc:
        body = exc.body if isinstance(exc.body, dict) else {"detail": str(exc.body)}
        if getattr(args, "format", "text") == "json":
            print(json.dumps(body, indent=2))
        else:
            print(f"govgate: {exc.status or 'no answer'}: {body.get('detail', body)}", file=sys.stderr)
            for error in body.get("errors") or []:
                print(f"  {error}", file=sys.stderr)
        return 2 if exc.status in (0, 500, 502, 503) else 1
    except OSError as exc:
        print(f"govgate: {exc}", file=sys.stderr)
        return 2


def _contract(args: argparse.Namespace, url: str, token: str) -> int:
    base = f"{url}/registry/contracts/{args.name if args.contract_command != 'propose' else args.contract}"
    if args.contract_command == "propose":
        body = args.file.read_bytes()
        media = "application/json" if body.lstrip().startswith(b"{") else "application/yaml"
        query = f"?version={args.version}" if args.version else ""
        answer = request("POST", f"{base}/versions{query}", token, body, media)
        change = answer.get("change_request") or {}
        return _print(args, answer, [
            f"{args.contract}@{answer['version']['version']}: {answer['version']['state']}"
            + ("" if answer.get("created") else " (already there, same content)"),
            *([f"change request {change['id']}: {change['state']}, needs {change['required_approvals']} approval(s),"
               f" required bump {change['required_bump']}", f"  {url}/registry/changes/{change['id']}",
               "  findings: " + ", ".join(f"{k} {v}" for k, v in change["findings"].items()),
               *(f"  affected: {a['consumer']} calls {a['operation']} ({a['calls']}x)"
                 for a in change["affected_consumers"])] if change else []),
        ])
    if args.contract_command == "publish":
        answer = request("POST", f"{base}/versions/{args.version}/publish", token, b"{}")
        return _print(args, answer, [f"{args.name}@{args.version}: {answer['state']}"])
    payload = {"sunset": args.sunset, **({"successor": args.successor} if args.successor else {})}
    answer = request("POST", f"{base}/versions/{args.version}/deprecate", token, json.dumps(payload).encode())
    return _print(args, answer, [f"{args.name}@{args.version}: {answer['state']}, sunset {answer['sunset']}"])


def _change(args: argparse.Namespace, url: str, token: str) -> int:
    target = f"{url}/registry/changes/{args.id}"
    if args.change_command == "show":
        answer = request("GET", target, token)
    else:
        answer = request("POST", f"{target}/{args.change_command}", token,
                          json.dumps({"comment": args.comment}).encode())
    votes = [f"  {v['decision']} by {v['voter']}: {v['comment']}" for v in answer["votes"]]
    changes = (answer.get("changes") or {}).get("changes") or []
    return _print(args, answer, [
        f"change request {answer['id']}: {answer['contract']}@{answer['version']} ({answer['state']}), "
        f"proposed by {answer['proposer']}, {len([v for v in answer['votes'] if v['decision'] == 'approve'])}"
        f"/{answer['required_approvals']} approvals",
        *votes, *(f"  {c['level']:<4} {c['id']}  {c['operation']} {c['location']}: {c['message']}" for c in changes[:50]),
    ])


def _consumer(args: argparse.Namespace, url: str, token: str) -> int:
    base = f"{url}/registry/consumers"
    if args.consumer_command == "create":
        body = {"id": args.id, "plan": args.plan, "scopes": args.scope, "name": args.name}
        answer = request("POST", base, token, json.dumps(body).encode())
        return _print(args, answer, [f"consumer {args.id} created on plan {args.plan}",
                                     f"client secret (shown once): {answer['client_secret']}"])
    if args.consumer_command == "list":
        answer = request("GET", base, token)
        return _print(args, answer, [f"{c['id']:<24} plan {c['plan']:<12} " + ", ".join(
            f"{s['contract']}@{s['major']}" for s in c["subscriptions"]) for c in answer])
    if args.consumer_command == "subscribe":
        contract, _, major = args.contract_major.rpartition("@")
        if not contract or not major.isdigit():
            raise ServerError(400, {"detail": "say CONTRACT@MAJOR, e.g. erp.sales-orders@1"})
        answer = request("POST", f"{base}/{args.id}/subscriptions", token,
                         json.dumps({"contract": contract, "major": int(major)}).encode())
        return _print(args, answer, [f"{args.id} may call " + ", ".join(
            f"{s['contract']}@{s['major']}" for s in answer["subscriptions"])])
    answer = request("POST", f"{base}/{args.id}/api-keys", token, b"{}")
    return _print(args, answer, [f"API key for {args.id} (shown once): {answer['api_key']}"])


def _plan(args: argparse.Namespace, url: str, token: str) -> int:
    if args.plan_command == "list":
        answer = request("GET", f"{url}/registry/plans", token)
        return _print(args, answer, [f"{p['name']:<16} {p['rate_per_second']}/s burst {p['burst']} quota "
                                     f"{p['quota_per_day'] or '-'} priority {p['priority']}" for p in answer])
    body = {"name": args.name, "rate_per_second": args.rate, "burst": args.burst, "priority": args.priority,
            "quota_per_day": args.quota_per_day}
    answer = request("POST", f"{url}/registry/plans", token, json.dumps(body).encode())
    return _print(args, answer, [f"plan {answer['name']} saved"])


def _audit(args: argparse.Namespace, url: str, token: str) -> int:
    answer = request("GET", f"{url}/registry/audit/verify", token)
    _print(args, answer, [f"audit chain: {'intact' if answer['ok'] else 'BROKEN'} ({answer['records']} records)",
                          *(f"  {p}" for p in answer["problems"])])
    return 0 if answer["ok"] else 1


def _login(url: str, token: str) -> int:
    CREDENTIALS.parent.mkdir(parents=True, exist_ok=True)
    CREDENTIALS.touch(mode=0o600)
    CREDENTIALS.write_text(json.dumps({"url": url, "token": token}))
    print(f"stored credentials for {url} in {CREDENTIALS}")
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="the govgate server (default: $GOVGATE_URL, then what `login` stored)")
    parser.add_argument("--token", help="a bearer token (default: $GOVGATE_TOKEN, then what `login` stored)")
    parser.add_argument("--format", choices=["text", "json"], default="text", help="output format")


def credentials(args: argparse.Namespace) -> tuple[str, str]:
    stored = json.loads(CREDENTIALS.read_text()) if CREDENTIALS.exists() else {}
    url = getattr(args, "url", None) or os.environ.get("GOVGATE_URL") or stored.get("url") or "http://127.0.0.1:8080"
    token = args.token or os.environ.get("GOVGATE_TOKEN") or stored.get("token") or ""
    if not token:
        raise ServerError(0, {"detail": "no token: pass --token, set GOVGATE_TOKEN or run `govgate login`"})
    return url.rstrip("/"), token


def request(method: str, url: str, token: str, body: bytes | None = None, media: str = "application/json") -> Any:
    request = urllib.request.Request(url, data=body, method=method, headers={
        "Authorization": f"Bearer {token}", "Accept": "application/json", "Content-Type": media})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - the configured server
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            problem = json.loads(exc.read())
        except ValueError:
            problem = {"detail": exc.reason}
        raise ServerError(exc.code, problem) from None
    except urllib.error.URLError as exc:
        raise ServerError(0, {"detail": f"cannot reach {url}: {exc.reason}"}) from None


def _print(args: argparse.Namespace, answer: Any, lines: list[str]) -> int:
    print(json.dumps(answer, indent=2) if args.format == "json" else "\n".join(lines))
    return 0
