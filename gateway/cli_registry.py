"""`govgate contract …` and `govgate change …`: the registry's contracts, versions and change requests."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from gateway.remote import Client, Done, ServerError, UsageError, arg, command

NAME = arg("name", help="the contract's name, e.g. erp.sales-orders")
VERSION = arg("version", help="the version, e.g. 1.4.0")


def resolve(client: Client, selector: str) -> tuple[str, str]:
    """NAME, NAME@VERSION or NAME@vMAJOR → (name, version): the newest published version when not exact."""
    name, _, wanted = selector.partition("@")
    if not name:
        raise UsageError(f"{selector!r} names no contract: say NAME, NAME@VERSION or NAME@vMAJOR")
    if wanted and not (wanted[0] == "v" and wanted[1:].isdigit()):
        return name, wanted
    major = int(wanted[1:]) if wanted else None
    published = [v for v in client.get(f"/registry/contracts/{name}/versions") if v["state"] in (
        "published", "deprecated") and (major is None or v["major"] == major)]
    if not published:
        where = f" in major {major}" if major is not None else ""
        raise UsageError(f"{name} has no published version{where}")
    return name, max(published, key=_precedence)["version"]


def _precedence(version: dict[str, Any]) -> tuple[Any, ...]:
    from registry.errors import InvalidRequest
    from registry.model import SemVer

    try:
        return (0, SemVer.parse(version["version"]), "")
    except InvalidRequest:  # a version that is not semver orders after by publication time
        return (1, None, version.get("published_at") or "")


@command("contract", "list", "list contracts")
def contract_list(args: argparse.Namespace, client: Client) -> Done:
    answer = client.get("/registry/contracts")
    return Done(answer, [f"{c['name']:<32} {c['kind']:<8} owner {c['owner']:<16} {c.get('description', '')[:60]}"
                         for c in answer] or ["no contracts"])


@command("contract", "show", "show a contract and its versions", NAME)
def contract_show(args: argparse.Namespace, client: Client) -> Done:
    answer = client.get(f"/registry/contracts/{args.name}")
    contract = answer.get("contract", answer)
    versions = answer.get("versions") or client.get(f"/registry/contracts/{args.name}/versions")
    return Done(answer, [
        f"{contract['name']} ({contract['kind']}), owner {contract['owner']}, compatibility "
        f"{contract.get('compatibility', 'BACKWARD')}" + (f", upstream {contract['upstream']}"
                                                          if contract.get("upstream") else ""),
        *(f"  {v['version']:<12} {v['state']}" + (f", sunset {v['sunset']}" if v.get("sunset") else "")
          for v in versions)])


@command("contract", "register", "register a new contract (integrator or admin)", NAME,
         arg("--kind", choices=["openapi", "event"], required=True, help="an HTTP API or an event stream"),
         arg("--owner", required=True, help="the owning team (its members cannot approve its changes)"),
         arg("--description", default="", help="what the contract is for"),
         arg("--upstream", help="openapi: the configured upstream that serves it, e.g. erp"),
         arg("--compatibility", default="BACKWARD", help="event schemas: the compatibility mode (default BACKWARD)"))
def contract_register(args: argparse.Namespace, client: Client) -> Done:
    body = {"name": args.name, "kind": args.kind, "owner": args.owner, "description": args.description,
            "upstream": args.upstream, "compatibility": args.compatibility}
    answer = client.post("/registry/contracts", body)
    return Done(answer, [f"contract {args.name} registered, owner {args.owner}"])


@command("contract", "propose", "propose a version: bundles the file's relative $refs and opens a change request",
         arg("file", type=Path, help="the OpenAPI document or event JSON Schema (YAML or JSON); $refs to "
                                     "sibling files are bundled in, as lint and diff do"),
         arg("--contract", required=True, help="the contract's name"),
         arg("--version", help="the version (default: an OpenAPI document's info.version)"))
def contract_propose(args: argparse.Namespace, client: Client) -> Done:
    from registry.documents import canonical_json, load_file
    from registry.errors import InvalidDocument

    try:
        document = load_file(args.file)
    except InvalidDocument as exc:
        raise UsageError(f"{exc.detail}" + "".join(f"; {e}" for e in exc.errors[:5])) from None
    query = f"?version={args.version}" if args.version else ""
    answer = client.post(f"/registry/contracts/{args.contract}/versions{query}", canonical_json(document).encode())
    change = answer.get("change_request") or {}
    lines = [f"{args.contract}@{answer['version']['version']}: {answer['version']['state']}"
             + ("" if answer.get("created") else " (already there, same content)")]
    if change:
        lines += [f"change request {change['id']}: {change['state']}, needs {change['required_approvals']} "
                  f"approval(s), required bump {change['required_bump']}",
                  f"  govgate change show {change['id']}",
                  "  findings: " + (", ".join(f"{k} {v}" for k, v in change["findings"].items()) or "none"),
                  *(f"  affected: {a['consumer']} calls {a['operation']} ({a['calls']}x)"
                    for a in change["affected_consumers"])]
    return Done(answer, lines)


@command("contract", "pull", "print or save a published document",
         arg("selector", metavar="NAME[@VERSION|@vMAJOR]",
             help="a contract; @VERSION for one version, @vMAJOR for the newest published version of that major "
                  "(default: the newest published version)"),
         arg("-o", "--output", type=Path, help="write the document to this file instead of printing it"))
def contract_pull(args: argparse.Namespace, client: Client) -> Done:
    name, version = resolve(client, args.selector)
    document = client.get(f"/registry/contracts/{name}/versions/{version}/document")
    text = json.dumps(document, indent=2, ensure_ascii=False)
    if args.output is None:
        return Done(document, [text])
    args.output.write_text(text + "\n")
    return Done({"contract": name, "version": version, "file": str(args.output)},
                [f"{name}@{version} written to {args.output}"])


@command("contract", "changes", "what a version changes against the version it replaces", NAME, VERSION)
def contract_changes(args: argparse.Namespace, client: Client) -> Done:
    answer = client.get(f"/registry/contracts/{args.name}/versions/{args.version}/changes") or {}
    return Done(answer, _change_lines(answer.get("changes") or []) or ["no changes"])


@command("contract", "publish", "publish an approved version (admin); names the consumers not yet subscribed",
         NAME, VERSION)
def contract_publish(args: argparse.Namespace, client: Client) -> Done:
    answer = client.post(f"/registry/contracts/{args.name}/versions/{args.version}/publish")
    lines = [f"{args.name}@{args.version}: {answer['state']}"]
    major = answer.get("major", 0)
    if major > 0:
        consumers = client.get("/registry/consumers")
        waiting = sorted(c["id"] for c in consumers if _subscribed(c, args.name, major - 1)
                         and not _subscribed(c, args.name, major))
        if waiting:
            lines += [f"a new major reaches a consumer only once it subscribes; these call v{major - 1} and are not "
                      f"subscribed to v{major}: {', '.join(waiting)}",
                      *(f"  govgate consumer subscribe {c} {args.name}@{major}" for c in waiting)]
    return Done(answer, lines)


def _subscribed(consumer: dict[str, Any], contract: str, major: int) -> bool:
    return any(s["contract"] == contract and s["major"] == major for s in consumer["subscriptions"])


@command("contract", "deprecate", "deprecate a published version (admin)", NAME, VERSION,
         arg("--sunset", required=True, help="the date after which the gateway answers 410 (YYYY-MM-DD)"),
         arg("--successor", help="the version callers should move to"))
def contract_deprecate(args: argparse.Namespace, client: Client) -> Done:
    body = {"sunset": args.sunset, **({"successor": args.successor} if args.successor else {})}
    answer = client.post(f"/registry/contracts/{args.name}/versions/{args.version}/deprecate", body)
    return Done(answer, [f"{args.name}@{args.version}: {answer['state']}, sunset {answer['sunset']}"])


@command("contract", "retire", "retire a deprecated version (admin): the gateway answers 410", NAME, VERSION,
         arg("--force", action="store_true", help="retire before the sunset date"),
         arg("--reason", default="", help="why (kept in the audit log)"))
def contract_retire(args: argparse.Namespace, client: Client) -> Done:
    answer = client.post(f"/registry/contracts/{args.name}/versions/{args.version}/retire",
                         {"force": args.force, "reason": args.reason})
    return Done(answer, [f"{args.name}@{args.version}: {answer['state']}"])


@command("contract", "usage", "who called which operation of a contract, from gateway traffic", NAME)
def contract_usage(args: argparse.Namespace, client: Client) -> Done:
    answer = client.get(f"/registry/contracts/{args.name}/usage")
    return Done(answer, [f"{u['consumer']:<24} v{u['major']} {u['operation']:<40} {u['count']} call(s), "
                         f"{u['errors']} error(s), last {u['last_seen']}" for u in answer] or ["no calls recorded"])


@command("contract", "published", "every published version")
def contract_published(args: argparse.Namespace, client: Client) -> Done:
    answer = client.get("/registry/published")
    return Done(answer, [f"{v['contract']}@{v['version']}" for v in answer] or ["nothing published"])


@command("contract", "verifications", "the provider verifications recorded for a version, newest first",
         NAME, VERSION)
def contract_verifications(args: argparse.Namespace, client: Client) -> Done:
    answer = client.get(f"/registry/contracts/{args.name}/versions/{args.version}/verifications")
    return Done(answer, [f"{'passed' if v['passed'] else 'FAILED'} in {v['environment']}: {v.get('summary', '')}"
                         for v in answer] or ["no verification recorded"])


@command("contract", "can-i-publish", "whether the verifications the gateway requires have passed (exit 1 if not)",
         NAME, VERSION)
def contract_can_i_publish(args: argparse.Namespace, client: Client) -> Done:
    answer = client.get(f"/registry/contracts/{args.name}/versions/{args.version}/can-i-publish")
    missing = ", ".join(answer.get("missing") or []) or "none"
    return Done(answer, [f"{args.name}@{args.version}: {'yes' if answer['ok'] else 'no'} (missing: {missing})"],
                0 if answer["ok"] else 1)


@command("change", "list", "list change requests",
         arg("--state", choices=["open", "approved", "rejected", "withdrawn", "published"],
             help="only requests in this state"),
         arg("--contract", help="only requests for this contract"),
         arg("--waiting-for-me", action="store_true",
             help="only open requests the token's holder may still vote on (board members)"))
def change_list(args: argparse.Namespace, client: Client) -> Done:
    state = "open" if args.waiting_for_me else args.state
    answer = client.get("/registry/changes", contract=args.contract, state=state)
    if args.waiting_for_me:
        answer = _waiting_for(client, answer)
    return Done(answer, [f"{c['id']}  {c['contract']}@{c['version']:<10} {c['state']:<9} by {c['proposer']}, "
                         f"{_approvals(c)}/{c['required_approvals']} approvals, bump {c['required_bump']}"
                         for c in answer] or ["no change requests"])


def _waiting_for(client: Client, changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    import jwt

    try:
        claims = jwt.decode(client.token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise UsageError("--waiting-for-me needs a JWT (it reads who you are from the token)") from None
    if "board" not in (claims.get("roles") or []):
        return []
    me, team = claims.get("sub"), claims.get("team")
    owners = {c["name"]: c["owner"] for c in client.get("/registry/contracts")}

    def may_vote(change: dict[str, Any]) -> bool:
        if change["proposer"] == me or any(v["voter"] == me for v in change["votes"]):
            return False
        return team is None or owners.get(change["contract"]) != team  # the owning team cannot approve

    return [c for c in changes if may_vote(c)]


def _approvals(change: dict[str, Any]) -> int:
    return len([v for v in change["votes"] if v["decision"] == "approve"])


@command("change", "show", "show a change request: the diff, the lint report, the affected consumers and the votes",
         arg("id", help="the change request's id"))
def change_show(args: argparse.Namespace, client: Client) -> Done:
    return _change_done(client.get(f"/registry/changes/{args.id}"))


def _vote(decision: str, text: str) -> None:
    @command("change", decision, text, arg("id", help="the change request's id"),
             arg("--comment", default="", help="why (shown to the proposer and kept in the audit log)"))
    def vote(args: argparse.Namespace, client: Client) -> Done:
        return _change_done(client.post(f"/registry/changes/{args.id}/{decision}", {"comment": args.comment}))


for _decision, _text in (("approve", "approve a change request (board)"),
                         ("reject", "reject a change request (board); one rejection closes it"),
                         ("withdraw", "withdraw a change request (the proposer or an admin)")):
    _vote(_decision, _text)


def _change_done(answer: dict[str, Any]) -> Done:
    lint = answer.get("lint") or {}
    findings = lint.get("findings") or []
    changes = (answer.get("changes") or {}).get("changes") or []
    affected = answer.get("affected_consumers") or []
    return Done(answer, [
        f"change request {answer['id']}: {answer['contract']}@{answer['version']} ({answer['state']}), "
        f"replaces {answer.get('base_version') or 'nothing'}, proposed by {answer['proposer']}, "
        f"{_approvals(answer)}/{answer['required_approvals']} approvals, required bump {answer['required_bump']}",
        f"changes ({len(changes)}):", *_change_lines(changes[:50]),
        f"lint ({len(findings)} finding(s)):",
        *(f"  {f['severity']:<5} {f['rule']}  {f.get('path') or '/'}: {f['message']}" for f in findings[:50]),
        f"affected consumers ({len(affected)}):",
        *(f"  {a['consumer']} calls {a['operation']} ({a['calls']}x, last {a['last_seen']})" for a in affected),
        f"votes ({len(answer['votes'])}):",
        *(f"  {v['decision']} by {v['voter']}: {v['comment']}" for v in answer["votes"]),
    ])


def _change_lines(changes: list[dict[str, Any]]) -> list[str]:
    return [f"  {c['level']:<4} {c['id']}  {c['operation']} {c['location']}: {c['message']}" for c in changes]


def fetch_published(client: Client, selector: str) -> dict[str, Any]:
    """The document `diff --against` compares with."""
    try:
        name, version = resolve(client, selector)
        document: dict[str, Any] = client.get(f"/registry/contracts/{name}/versions/{version}/document")
    except ServerError as exc:
        raise UsageError(f"cannot fetch {selector}: {exc.body.get('detail', exc)}") from None
    return document
