"""`govgate consumer|plan|audit|webhook|events …`: what a platform admin runs."""

from __future__ import annotations

import argparse
from typing import Any

from gateway.remote import Client, Done, UsageError, arg, command

CONSUMER = arg("id", help="the consumer's id, e.g. channel-checkout")
STREAM = (arg("contract", help="the event contract, e.g. events.inventory-adjusted"),
          arg("major", metavar="vMAJOR", help="the contract major, e.g. v1"))
REASON = arg("--reason", default="", help="why (kept in the audit log)")


def _subscriptions(consumer: dict[str, Any]) -> str:
    return ", ".join(f"{s['contract']}@{s['major']}" for s in consumer["subscriptions"]) or "nothing"


@command("consumer", "create", "register a consumer; prints its client secret once", CONSUMER,
         arg("--plan", required=True, help="the plan it is rated by (see `govgate plan list`)"),
         arg("--scope", action="append", default=[], help="a scope its tokens may carry (repeatable)"),
         arg("--name", default="", help="a display name"))
def consumer_create(args: argparse.Namespace, client: Client) -> Done:
    answer = client.post("/registry/consumers", {"id": args.id, "plan": args.plan, "scopes": args.scope,
                                                  "name": args.name})
    return Done(answer, [f"consumer {args.id} created on plan {args.plan}",
                         f"client secret (shown once): {answer['client_secret']}"])


@command("consumer", "list", "list consumers with their plans and subscriptions")
def consumer_list(args: argparse.Namespace, client: Client) -> Done:
    answer = client.get("/registry/consumers")
    return Done(answer, [f"{c['id']:<24} plan {c['plan']:<12} {_subscriptions(c)}" for c in answer]
                or ["no consumers"])


@command("consumer", "show", "show one consumer", CONSUMER)
def consumer_show(args: argparse.Namespace, client: Client) -> Done:
    answer = client.get(f"/registry/consumers/{args.id}")
    return Done(answer, [f"{answer['id']} ({answer.get('name') or 'no name'}), plan {answer['plan']}",
                         f"  scopes: {', '.join(answer['scopes']) or 'none'}",
                         f"  may call: {_subscriptions(answer)}"])


def _contract_major(text: str) -> tuple[str, int]:
    contract, _, major = text.rpartition("@")
    major = major.removeprefix("v")
    if not contract or not major.isdigit():
        raise UsageError(f"{text!r} is not CONTRACT@MAJOR, e.g. erp.sales-orders@1")
    return contract, int(major)


MAJOR = arg("contract_major", metavar="CONTRACT@MAJOR", help="a contract major, e.g. erp.sales-orders@2")


@command("consumer", "subscribe", "let a consumer call a contract major (a new major needs its own subscription)",
         CONSUMER, MAJOR)
def consumer_subscribe(args: argparse.Namespace, client: Client) -> Done:
    contract, major = _contract_major(args.contract_major)
    answer = client.post(f"/registry/consumers/{args.id}/subscriptions", {"contract": contract, "major": major})
    return Done(answer, [f"{args.id} may call {_subscriptions(answer)}"])


@command("consumer", "unsubscribe", "end a consumer's subscription to a contract major", CONSUMER, MAJOR)
def consumer_unsubscribe(args: argparse.Namespace, client: Client) -> Done:
    contract, major = _contract_major(args.contract_major)
    answer = client.delete(f"/registry/consumers/{args.id}/subscriptions/{contract}/{major}")
    return Done(answer, [f"{args.id} may call {_subscriptions(answer)}" if answer else f"{args.id} unsubscribed"])


@command("consumer", "api-key", "issue an API key for a consumer; prints it once", CONSUMER)
def consumer_api_key(args: argparse.Namespace, client: Client) -> Done:
    answer = client.post(f"/registry/consumers/{args.id}/api-keys")
    return Done(answer, [f"API key for {args.id} (shown once): {answer['api_key']}"])


@command("plan", "set", "create or replace a plan", arg("name", help="the plan's name, e.g. checkout"),
         arg("--rate", type=float, required=True, help="requests per second"),
         arg("--burst", type=int, required=True, help="requests allowed at once above the rate"),
         arg("--quota-per-day", type=int, help="requests per day (default: no quota)"),
         arg("--priority", default="normal", help="priority class under load, e.g. checkout, batch"))
def plan_set(args: argparse.Namespace, client: Client) -> Done:
    answer = client.post("/registry/plans", {"name": args.name, "rate_per_second": args.rate, "burst": args.burst,
                                             "priority": args.priority, "quota_per_day": args.quota_per_day})
    return Done(answer, [f"plan {answer['name']} saved"])


@command("plan", "list", "list plans")
def plan_list(args: argparse.Namespace, client: Client) -> Done:
    answer = client.get("/registry/plans")
    return Done(answer, [f"{p['name']:<16} {p['rate_per_second']}/s burst {p['burst']} quota "
                         f"{p['quota_per_day'] or '-'} priority {p['priority']}" for p in answer] or ["no plans"])


@command("audit", "verify", "check that no audit record was edited or deleted (exit 1 if one was)")
def audit_verify(args: argparse.Namespace, client: Client) -> Done:
    answer = client.get("/registry/audit/verify")
    return Done(answer, [f"audit chain: {'intact' if answer['ok'] else 'BROKEN'} ({answer['records']} records)",
                         *(f"  {p}" for p in answer["problems"])], 0 if answer["ok"] else 1)


@command("audit", "log", "the audit log, oldest first",
         arg("--target", help="only records about this target, e.g. contract/erp.sales-orders"),
         arg("--actor", help="only records by this subject"), arg("--action", help="only this action"),
         arg("--limit", type=int, default=100, help="at most this many records (default 100)"))
def audit_log(args: argparse.Namespace, client: Client) -> Done:
    answer = client.get("/registry/audit", target=args.target, actor=args.actor, action=args.action,
                        limit=args.limit)
    return Done(answer, [f"{r.get('seq', '')} {r.get('at', '')} {r['actor']} {r['action']} {r['target']}"
                         for r in answer] or ["no records"])


@command("webhook", "create", "subscribe a URL to workflow events; prints its signing secret once",
         arg("url", help="where to POST the signed CloudEvents"),
         arg("--event", action="append", required=True, help="an event type (repeatable)"))
def webhook_create(args: argparse.Namespace, client: Client) -> Done:
    answer = client.post("/registry/webhooks", {"url": args.url, "events": args.event})
    return Done(answer, [f"webhook {answer['webhook']['id']} for {args.url}",
                         f"signing secret (shown once): {answer['secret']}"])


@command("webhook", "list", "list webhooks")
def webhook_list(args: argparse.Namespace, client: Client) -> Done:
    answer = client.get("/registry/webhooks")
    return Done(answer, [f"{w['id']}  {w['url']}  {', '.join(w['events'])}" for w in answer] or ["no webhooks"])


WEBHOOK = arg("id", help="the webhook's id")


@command("webhook", "deliveries", "the delivery log of a webhook, newest first", WEBHOOK)
def webhook_deliveries(args: argparse.Namespace, client: Client) -> Done:
    answer = client.get(f"/registry/webhooks/{args.id}/deliveries")
    return Done(answer, [" ".join(str(d.get(k, "")) for k in ("at", "event", "status", "attempts")) for d in answer]
                or ["no deliveries"])


@command("webhook", "delete", "delete a webhook", WEBHOOK)
def webhook_delete(args: argparse.Namespace, client: Client) -> Done:
    client.delete(f"/registry/webhooks/{args.id}")
    return Done({"deleted": args.id}, [f"webhook {args.id} deleted"])


def _stream(args: argparse.Namespace) -> str:
    major = args.major if args.major.startswith("v") else f"v{args.major}"
    return f"/registry/events/{args.contract}/{major}"


@command("events", "dead-letters", "list a stream's dead letters, oldest first", *STREAM,
         arg("--limit", type=int, default=100, help="at most this many (default 100)"))
def dead_letters(args: argparse.Namespace, client: Client) -> Done:
    answer = client.get(f"{_stream(args)}/dead-letters", limit=args.limit)
    return Done(answer, [f"{d['id']}  {d.get('reason', '')}" for d in answer] or ["no dead letters"])


@command("events", "dead-letter", "show one dead letter", *STREAM, arg("id", help="the dead letter's stream id"))
def dead_letter(args: argparse.Namespace, client: Client) -> Done:
    answer = client.get(f"{_stream(args)}/dead-letters/{args.id}")
    return Done(answer, [f"{k}: {v}" for k, v in answer.items()])


@command("events", "replay", "replay dead letters (one, or all oldest first); those still invalid stay", *STREAM,
         arg("id", nargs="?", help="one dead letter's stream id (default: all)"), REASON)
def replay(args: argparse.Namespace, client: Client) -> Done:
    if args.id:
        answer = client.post(f"{_stream(args)}/dead-letters/{args.id}/replay", {"reason": args.reason})
        return Done(answer, [f"{answer['id']}: {answer['outcome']}"])
    answer = client.post(f"{_stream(args)}/dead-letters/replay", {"reason": args.reason})
    return Done(answer, [*(f"{o['id']}: {o['outcome']}" for o in answer["replayed"]),
                         f"{answer['remaining']} dead letter(s) remain"])


@command("events", "groups", "a stream's consumer groups: pending entries and lag", *STREAM)
def groups(args: argparse.Namespace, client: Client) -> Done:
    answer = client.get(f"{_stream(args)}/groups")
    return Done(answer, [" ".join(f"{k} {v}" for k, v in g.items()) for g in answer] or ["no consumer groups"])


@command("events", "group-replay", "deliver what was stored since --from (up to --to) to a consumer group again",
         *STREAM, arg("group", help="the consumer group, CONSUMER:GROUP"),
         arg("--from", dest="from_time", required=True, help="RFC 3339 time with a zone, e.g. 2025-11-28T06:00:00Z"),
         arg("--to", dest="to_time", help="end of the range (default: rewind the group to --from)"),
         arg("--limit", type=int, help="a range: at most this many entries"), REASON)
def group_replay(args: argparse.Namespace, client: Client) -> Done:
    body = {"from": args.from_time, "reason": args.reason, **({"to": args.to_time} if args.to_time else {}),
            **({"limit": args.limit} if args.limit else {})}
    answer = client.post(f"{_stream(args)}/groups/{args.group}/replay", body)
    return Done(answer, [" ".join(f"{k} {v}" for k, v in answer.items())])
