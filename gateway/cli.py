"""The `govgate` command: serve, token, the offline document commands and the registry's commands.

Every command documents its exit codes in its --help; across them 0 means done or nothing found,
1 a finding or a refusal the output names, 2 a usage error, unreadable input or an unreachable
server, 3 an internal error (never to be read as a verdict).
"""

from __future__ import annotations

import argparse
import signal
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import msgspec

from gateway import cli_documents, remote
from gateway import config as gateway_config

SERVE_EXIT = "Exit codes: 0 stopped by a signal; 2 the configuration, the store or the port cannot be used."
TOKEN_EXIT = "Exit codes: 0 printed; 2 usage error or no signing key at the configured location."


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except SystemExit as exc:
        if not isinstance(exc.code, str):
            raise
        print(exc.code, file=sys.stderr)  # one line that says what to do: a usage or environment error
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.command in ("login", *remote.GROUPS):
        return remote.run(args)
    if args.command in cli_documents.HANDLERS:
        return cli_documents.HANDLERS[args.command](args)
    if args.command == "token":
        return _issue_token(args)
    return _serve(args)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line."""
    parser = argparse.ArgumentParser(prog="govgate", description="API governance gateway and contract registry. "
                                     + __doc__.split("\n\n", 1)[1].replace("\n", " ").strip())
    parser.add_argument("--version", action="version", version=f"govgate {_version()}",
                        help="print govgate's version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the gateway and the registry API", description=SERVE_EXIT)
    serve.add_argument("--demo", action="store_true",
                       help="start the sample upstreams and publish the bundled retail contracts")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8080)")
    _key_options(serve)
    serve.add_argument("--server", choices=["uvicorn", "granian"], help="ASGI server (default uvicorn)")
    token = commands.add_parser(
        "token", help="issue a token signed with this gateway's key (bootstrap an admin, script a pipeline)",
        description=TOKEN_EXIT)
    token_commands = token.add_subparsers(dest="token_command", required=True, metavar="COMMAND")
    issue = token_commands.add_parser("issue", help="print a signed JWT", description=(
        "Print a JWT signed with the key `govgate serve` uses: give the same --config (or --key). "
        "A missing key is an error; this command never creates one. " + TOKEN_EXIT))
    issue.add_argument("--subject", required=True, help="who the token is for (a person, a pipeline, a consumer id)")
    issue.add_argument("--role", action="append", default=[], choices=["integrator", "board", "admin"],
                       help="registry role (repeatable); makes a registry token")
    issue.add_argument("--team", help="the owning team of the subject (separation of duties)")
    issue.add_argument("--scope", action="append", default=[],
                       help="gateway scope (repeatable); makes a gateway token for a consumer")
    issue.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    _key_options(issue)
    cli_documents.add_commands(commands)
    remote.add_commands(commands)
    return parser


def _key_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="YAML configuration file (see docs/configuration.md)")
    parser.add_argument("--key", type=Path, help="the signing key file (default: tokens.signing_key_file of "
                                                  "--config, .govgate/signing-key.pem relative to the working folder)")


def _version() -> str:
    try:
        return version("govgate")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _config(args: argparse.Namespace) -> gateway_config.GatewayConfig:
    config = gateway_config.load(args.config)
    if getattr(args, "key", None) is not None:
        config = msgspec.structs.replace(config, tokens=msgspec.structs.replace(
            config.tokens, signing_key_file=str(args.key)))
    return config


def _issue_token(args: argparse.Namespace) -> int:
    from registry.tokens import SigningKey

    config = _config(args).tokens
    if args.role and args.scope:
        print("govgate token issue: a token is either for the registry (--role) or the gateway (--scope)",
              file=sys.stderr)
        return 2
    key_file = Path(config.signing_key_file)
    if not key_file.exists():
        print(f"govgate token issue: there is no signing key at {key_file.resolve()}; give the --config (or --key) "
              "that `govgate serve` uses, or start `govgate serve` once to create its key", file=sys.stderr)
        return 2
    key = SigningKey.load_or_create(key_file)
    claims: dict = {"roles": sorted(set(args.role))} if args.role else {"scope": " ".join(args.scope),
                                                                          "client_id": args.subject}
    if args.team:
        claims["team"] = args.team
    audience = config.registry_audience if args.role else config.gateway_audience
    print(key.issue(issuer=config.issuer, audience=audience, subject=args.subject, ttl_seconds=args.ttl, **claims))
    return 0


def _serve(args: argparse.Namespace) -> int:
    config = _config(args)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port), ("server", args.server)) if v}
    config = msgspec.structs.replace(config, **overrides)
    # uvicorn shuts down on SIGTERM, then raises the signal again: as an exception here, so that the
    # demo's upstreams are stopped too (the default action would end the process on the spot)
    signal.signal(signal.SIGTERM, _terminated)
    if not args.demo:
        _check_store(config.store)
    demo = None
    try:
        if args.demo:
            from gateway.demo.launch import Demo

            demo = Demo.start(config)
            config = demo.config
        from gateway.server import serve

        serve(config, on_listening=demo.announce if demo else None)
    except KeyboardInterrupt:
        pass
    finally:
        if demo is not None:
            demo.stop()
    return 0


def _check_store(url: str) -> None:
    """Before serving: an unknown scheme or an unreachable PostgreSQL is one line (SystemExit), not a traceback."""
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "sqlite":
        return
    if parts.scheme not in ("postgresql", "postgres"):
        raise SystemExit(f"govgate: the store {parts.scheme or url}:// is unknown: use sqlite:///FILE or "
                         "postgresql://USER@HOST:PORT/DATABASE")
    import psycopg

    where = f"PostgreSQL at {parts.hostname or 'localhost'}:{parts.port or 5432}, database {parts.path.lstrip('/')}"
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SystemExit(f"govgate: cannot open the store ({where}): {reason}; start PostgreSQL, create the "
                         "database (createdb), or fix `store` in the config") from None


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    sys.exit(main())
