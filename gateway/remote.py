"""The plumbing of the CLI commands that talk to a govgate server: credentials, HTTP, a table of commands.

A command is a function registered with `@command(group, name, help, *args)`; it gets the parsed
arguments and a `Client`, and returns a `Done` (what the server answered, the lines to print
in text mode, the exit code). Commands read GOVGATE_URL and GOVGATE_TOKEN (or --url / --token,
or what `govgate login` stored) and print JSON with --format json.

Exit codes of every server command:
  0  done
  1  refused: the server answered 4xx (the line says why), blocking findings, a broken audit chain
  2  usage error (a missing token, a malformed argument), unreadable input, or the server is unreachable
     or failed (5xx)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CREDENTIALS = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "govgate" / "credentials.json"
EXIT_CODES = ("Exit codes: 0 done; 1 refused by the server (4xx, blocking findings); "
              "2 usage error, unreadable input, or the server unreachable or failing.")


class ServerError(Exception):
    """The server answered with a problem, or could not be reached (status 0)."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(body.get("detail", body) if isinstance(body, dict) else body)
        self.status = status
        self.body = body if isinstance(body, dict) else {"detail": str(body)}


class UsageError(Exception):
    """The command line cannot be run as given: exit 2, with the message."""


@dataclass
class Done:
    """What a command did: the server's answer (printed with --format json), text lines, exit code."""

    answer: Any
    lines: list[str]
    code: int = 0


@dataclass
class Client:
    """A govgate server and the bearer token to call it with."""

    url: str
    token: str

    def get(self, path: str, **query: Any) -> Any:
        params = urllib.parse.urlencode({k: v for k, v in query.items() if v not in (None, False)})
        return request("GET", f"{self.url}{path}" + (f"?{params}" if params else ""), self.token)

    def post(self, path: str, body: Any = None, media: str = "application/json") -> Any:
        data = body if isinstance(body, bytes) else json.dumps(body if body is not None else {}).encode()
        return request("POST", f"{self.url}{path}", self.token, data, media)

    def delete(self, path: str) -> Any:
        return request("DELETE", f"{self.url}{path}", self.token)


Handler = Callable[[argparse.Namespace, Client], Done]


@dataclass
class Command:
    """One `govgate GROUP NAME` command."""

    group: str
    name: str
    help: str
    args: tuple[tuple[tuple[str, ...], dict[str, Any]], ...]
    handler: Handler = field(repr=False)


GROUPS = {
    "contract": "register, propose, pull, publish, deprecate and retire contracts and their versions",
    "change": "list, show, approve, reject and withdraw change requests (the board's side)",
    "consumer": "manage the channels that call governed APIs (admin)",
    "plan": "manage plans: rate, burst, daily quota, priority class (admin)",
    "audit": "the hash-chained audit log",
    "webhook": "subscribe URLs to workflow events (admin)",
    "events": "event streams: dead letters, consumer groups, replay (admin)",
}
COMMANDS: dict[tuple[str, str], Command] = {}


def arg(*flags: str, **kwargs: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    """An argparse argument of a command: flags and keyword arguments, as for add_argument."""
    return flags, kwargs


def command(group: str, name: str, help: str, *args: tuple[tuple[str, ...], dict[str, Any]]
            ) -> Callable[[Handler], Handler]:
    """Register a server command in COMMANDS."""
    def register(handler: Handler) -> Handler:
        COMMANDS[(group, name)] = Command(group, name, help, args, handler)
        return handler
    return register


def add_commands(commands: Any) -> None:
    """Add `login` and every registered group of commands to the `govgate` parser."""
    from gateway import cli_admin, cli_registry  # noqa: F401 - they register their commands

    login = commands.add_parser("login", help="store a server URL and token for the other commands",
                                description="Store --url and --token in " + str(CREDENTIALS) + ". " + EXIT_CODES)
    common_options(login)
    groups: dict[str, Any] = {}
    for group, text in GROUPS.items():
        parser = commands.add_parser(group, help=text, description=text + ". " + EXIT_CODES)
        groups[group] = parser.add_subparsers(dest="subcommand", required=True, metavar="COMMAND")
    for (group, name), spec in COMMANDS.items():
        parser = groups[group].add_parser(name, help=spec.help, description=spec.help + ". " + EXIT_CODES)
        for flags, kwargs in spec.args:
            parser.add_argument(*flags, **kwargs)
        common_options(parser)


def common_options(parser: argparse.ArgumentParser) -> None:
    """--url, --token and --format, shared by every server command."""
    parser.add_argument("--url", help="the govgate server (default: $GOVGATE_URL, then what `login` stored, "
                                      "then http://127.0.0.1:8080)")
    parser.add_argument("--token", help="a bearer token (default: $GOVGATE_TOKEN, then what `login` stored)")
    parser.add_argument("--format", choices=["text", "json"], default="text",
                        help="text for people (default), json for scripts: what the server answered")


def run(args: argparse.Namespace) -> int:
    """Run a server command; print its result or one line saying why it failed."""
    prog = f"govgate {args.command}" + (f" {args.subcommand}" if getattr(args, "subcommand", None) else "")
    try:
        client = Client(*credentials(args))
        if args.command == "login":
            return _login(client)
        done = COMMANDS[(args.command, args.subcommand)].handler(args, client)
    except UsageError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    except ServerError as exc:
        if getattr(args, "format", "text") == "json":
            print(json.dumps(exc.body, indent=2))
        else:
            print(f"{prog}: {problem_line(exc)}", file=sys.stderr)
            for error in exc.body.get("errors") or []:
                print(f"  {sentence(error)}", file=sys.stderr)
        return 1 if 400 <= exc.status < 500 else 2
    except OSError as exc:
        print(f"{prog}: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), file=sys.stderr)
        return 2
    print(json.dumps(done.answer, indent=2) if args.format == "json" else "\n".join(done.lines))
    return done.code


def problem_line(exc: ServerError) -> str:
    """One line for a problem answer: the status in words and the detail."""
    detail = exc.body.get("detail") or exc.body.get("title") or "no detail"
    if exc.status == 0:
        return str(detail)
    return f"the server answered {exc.status}: {detail}"


def sentence(error: Any) -> str:
    """An entry of a problem's `errors` as text: `body /lines/0: message`, never a Python repr."""
    if isinstance(error, dict):
        where = " ".join(str(error[k]) for k in ("in", "pointer", "path", "rule") if error.get(k))
        message = error.get("message") or ", ".join(f"{k} {v}" for k, v in error.items() if k not in (
            "in", "pointer", "path", "rule"))
        return f"{where}: {message}" if where else str(message)
    if isinstance(error, list):
        return ", ".join(map(str, error))
    return str(error)


def credentials(args: argparse.Namespace) -> tuple[str, str]:
    """The server URL and token: options, then the environment, then what `govgate login` stored."""
    stored = json.loads(CREDENTIALS.read_text()) if CREDENTIALS.exists() else {}
    url = getattr(args, "url", None) or os.environ.get("GOVGATE_URL") or stored.get("url") or "http://127.0.0.1:8080"
    token = getattr(args, "token", None) or os.environ.get("GOVGATE_TOKEN") or stored.get("token") or ""
    if not token:
        raise UsageError("no token: pass --token, set GOVGATE_TOKEN or run `govgate login --url URL --token TOKEN`")
    return url.rstrip("/"), token


def request(method: str, url: str, token: str, body: bytes | None = None, media: str = "application/json") -> Any:
    """One HTTP call; the decoded JSON answer, or ServerError."""
    call = urllib.request.Request(url, data=body, method=method, headers={
        "Authorization": f"Bearer {token}", "Accept": "application/json", "Content-Type": media})
    try:
        with urllib.request.urlopen(call, timeout=60) as response:  # noqa: S310 - the configured server
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            problem = json.loads(exc.read())
        except ValueError:
            problem = {"detail": exc.reason}
        raise ServerError(exc.code, problem) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ServerError(0, {"detail": f"cannot reach {urllib.parse.urlsplit(url).netloc}: {reason}"}) from None


def _login(client: Client) -> int:
    CREDENTIALS.parent.mkdir(parents=True, exist_ok=True)
    CREDENTIALS.touch(mode=0o600)
    CREDENTIALS.write_text(json.dumps({"url": client.url, "token": client.token}))
    print(f"stored credentials for {client.url} in {CREDENTIALS}")
    return 0
