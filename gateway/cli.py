"""The `govgate` command."""

from __future__ import annotations

import argparse
import signal
import sys
import traceback
from pathlib import Path

import msgspec

from gateway import config as gateway_config
from gateway import remote
from registry.compat.events import MODES
from registry.compat.formats import FORMATS


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = argparse.ArgumentParser(prog="govgate", description="API governance gateway and contract registry")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway and the registry API")
    serve.add_argument("--demo", action="store_true",
                       help="start a sample ERP upstream and publish the bundled retail contracts")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8080)")
    serve.add_argument("--config", type=Path, help="YAML configuration file (see docs/configuration.md)")
    serve.add_argument("--server", choices=["uvicorn", "granian"], help="ASGI server (default uvicorn)")
    diff = commands.add_parser(
        "diff", help="compare two contract documents and report breaking changes",
        description="Compare two OpenAPI 3.0/3.1 documents (or two JSON Schemas of an event) offline. "
                    "Exit 0: nothing at or above --fail-on; 1: something is; 2: input refused (unreadable, "
                    "or too large to compare within the engine's limits); 3: internal error (a bug, with its "
                    "traceback on stderr), never a verdict.")
    diff.add_argument("old", type=Path, help="the published (old) document, YAML or JSON")
    diff.add_argument("new", type=Path, help="the proposed (new) document, YAML or JSON")
    diff.add_argument("--format", choices=sorted(FORMATS), default="text", help="output format (default text)")
    diff.add_argument("--fail-on", choices=["ERR", "WARN", "INFO"], default="ERR",
                      help="exit 1 when a change at or above this level is found (default ERR)")
    diff.add_argument("--mode", choices=MODES, default="BACKWARD", type=str.upper,
                      help="compatibility mode for event schemas, in any case (default BACKWARD)")
    diff.add_argument("--minor-bump-level", choices=["ERR", "WARN", "INFO"], default="INFO",
                      help="level of semver-minor-bump-missing, a compatible change released without a minor bump "
                           "(default INFO; a breaking change without a major bump is always ERR)")
    diff.add_argument("--required-with-default", choices=["compatible", "breaking"], default="compatible",
                      help="event schemas: a new required property with a default is compatible "
                           "(Confluent) or breaking (oasdiff)")
    diff.add_argument("--colour", choices=["auto", "always", "never"], default="auto", help="colour text output")
    token = commands.add_parser(
        "token", help="issue a token signed with this gateway's key (bootstrap an admin, script a pipeline)")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    issue = token_commands.add_parser("issue", help="print a signed JWT")
    issue.add_argument("--subject", required=True, help="who the token is for (a person, a pipeline, a consumer id)")
    issue.add_argument("--role", action="append", default=[], choices=["integrator", "board", "admin"],
                       help="registry role (repeatable); makes a registry token")
    issue.add_argument("--team", help="the owning team of the subject (separation of duties)")
    issue.add_argument("--scope", action="append", default=[],
                       help="gateway scope (repeatable); makes a gateway token for a consumer")
    issue.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    issue.add_argument("--config", type=Path, help="YAML configuration file (for the signing key's location)")
    lint_parser = commands.add_parser("lint", help="check a contract document against the governance ruleset",
                                      description="Exit 0: no error findings; 1: errors; 2: input unreadable.")
    lint_parser.add_argument("file", type=Path, help="an OpenAPI document or event JSON Schema (YAML or JSON)")
    lint_parser.add_argument("--ruleset", type=Path, help="the organisation's ruleset (default: the bundled one)")
    lint_parser.add_argument("--format", choices=["text", "json"], default="text")
    check = commands.add_parser(
        "verify", help="run schemathesis against a provider for a contract version",
        description="Exit 0: every operation passed; 1: a check failed; 2: the contract or provider unreachable.")
    check.add_argument("target", help="CONTRACT@VERSION (fetched from the registry), or a name for --file")
    check.add_argument("--base-url", required=True, help="the provider, e.g. http://erp.internal:8000")
    check.add_argument("--file", type=Path, help="verify this local document instead of the registered one")
    check.add_argument("--max-examples", type=int, default=20, help="generated requests per operation (default 20)")
    check.add_argument("--header", action="append", default=[], help="extra header, e.g. 'Authorization: Bearer X'")
    check.add_argument("--junit", type=Path, help="also write a JUnit XML report here")
    check.add_argument("--format", choices=["text", "json"], default="text")
    check.add_argument("--record", action="store_true",
                       help="record the result in the registry against the version and --environment")
    check.add_argument("--environment", default="default", help="the provider's environment, e.g. staging")
    check.add_argument("--url", help="the govgate registry (default: $GOVGATE_URL)")
    check.add_argument("--token", help="a registry token (default: $GOVGATE_TOKEN)")
    remote.add_commands(commands)
    args = parser.parse_args(argv)
    if args.command in ("login", "contract", "change", "audit", "consumer", "plan"):
        return remote.run(args)
    if args.command == "diff":
        return _diff(args)
    if args.command == "lint":
        return _lint(args)
    if args.command == "verify":
        return _verify(args)
    if args.command == "token":
        return _issue_token(args)
    return _serve(args)


def _issue_token(args: argparse.Namespace) -> int:
    from registry.tokens import SigningKey

    config = gateway_config.load(args.config).tokens
    if args.role and args.scope:
        print("govgate token issue: a token is either for the registry (--role) or the gateway (--scope)",
              file=sys.stderr)
        return 2
    key = SigningKey.load_or_create(Path(config.signing_key_file))
    claims: dict = {"roles": sorted(set(args.role))} if args.role else {"scope": " ".join(args.scope),
                                                                          "client_id": args.subject}
    if args.team:
        claims["team"] = args.team
    audience = config.registry_audience if args.role else config.gateway_audience
    print(key.issue(issuer=config.issuer, audience=audience, subject=args.subject, ttl_seconds=args.ttl, **claims))
    return 0


def _diff(args: argparse.Namespace) -> int:
    from registry.compat.engine import CheckFailed, DiffTooLarge, diff_openapi
    from registry.compat.events import diff_event_schemas
    from registry.documents import load_file
    from registry.errors import InvalidDocument

    try:
        old, new = load_file(args.old), load_file(args.new)
    except InvalidDocument as exc:
        print(f"govgate diff: {exc.detail}" + "".join(f"\n  {e}" for e in exc.errors), file=sys.stderr)
        return 2
    kinds = {"openapi" in old, "openapi" in new}
    if len(kinds) != 1:
        print("govgate diff: one document is OpenAPI and the other is not", file=sys.stderr)
        return 2
    try:
        if "openapi" in old:
            report = diff_openapi(old, new, minor_bump_level=args.minor_bump_level)
        else:
            report = diff_event_schemas([old], new, mode=args.mode, required_with_default=args.required_with_default,
                                        old_version=_schema_version(old), new_version=_schema_version(new),
                                        minor_bump_level=args.minor_bump_level)
    except DiffTooLarge as exc:
        print(f"govgate diff: refused: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a bug must not read as a verdict (exit 1) in CI
        traceback.print_exc()
        what = str(exc) if isinstance(exc, CheckFailed) else f"{type(exc).__name__}: {exc}"
        print(f"govgate diff: internal error, not a verdict: {what}", file=sys.stderr)
        return 3
    formatter = FORMATS[args.format]
    if args.format == "text":
        colour = args.colour == "always" or (args.colour == "auto" and sys.stdout.isatty())
        print(formatter(report, args.fail_on, colour=colour))
    else:
        print(formatter(report, args.fail_on))
    return 1 if report.at_or_above(args.fail_on) else 0


def _verify(args: argparse.Namespace) -> int:
    from gateway.verify import as_junit, as_text, verify
    from registry.documents import load_file
    from registry.errors import InvalidDocument

    name, _, version = args.target.partition("@")
    try:
        if args.file is not None:
            document = load_file(args.file)
        else:
            if not version:
                print("govgate verify: say CONTRACT@VERSION, or give --file", file=sys.stderr)
                return 2
            url, token = remote.credentials(args)
            document = remote.request("GET", f"{url}/registry/contracts/{name}/versions/{version}/document", token)
    except (InvalidDocument, remote.ServerError, OSError) as exc:
        print(f"govgate verify: {getattr(exc, 'detail', exc)}", file=sys.stderr)
        return 2
    headers = dict(h.split(":", 1) for h in args.header if ":" in h)
    report = verify(document, args.base_url.rstrip("/"), contract=name,
                    version=version or str(document.get("info", {}).get("version", "")),
                    max_examples=args.max_examples, headers={k.strip(): v.strip() for k, v in headers.items()})
    if args.junit:
        args.junit.write_text(as_junit(report))
    print(msgspec.json.encode(report).decode() if args.format == "json" else as_text(report))
    if args.record:
        failed = [r.operation for r in report.operations if not r.passed]
        summary = f"{len(report.operations) - len(failed)} passed, {len(failed)} failed" + (
            f": {', '.join(failed)}" if failed else "")
        try:
            url, token = remote.credentials(args)
            remote.request("POST", f"{url}/registry/contracts/{name}/versions/{report.version}/verifications", token,
                           msgspec.json.encode({"environment": args.environment, "passed": report.passed,
                                                "base_url": report.base_url, "summary": summary,
                                                "report": report}))
        except (remote.ServerError, OSError) as exc:
            print(f"govgate verify: could not record the result: {getattr(exc, 'body', exc)}", file=sys.stderr)
            return 2
        print(f"recorded against {name}@{report.version} in {args.environment}")
    if any(f.check == "error" for r in report.operations for f in r.failures):
        return 2
    return 0 if report.passed else 1


def _lint(args: argparse.Namespace) -> int:
    from registry.documents import load_file
    from registry.errors import InvalidDocument
    from registry.lint import InvalidRuleset, detect_kind, lint, load_ruleset

    try:
        document = load_file(args.file)
        ruleset = load_ruleset(args.ruleset)
    except (InvalidDocument, InvalidRuleset, OSError) as exc:
        print(f"govgate lint: {getattr(exc, 'detail', exc)}", file=sys.stderr)
        return 2
    report = lint(document, kind=detect_kind(document), ruleset=ruleset)
    if args.format == "json":
        print(msgspec.json.encode(report).decode())
    else:
        for finding in report.findings:
            print(f"{finding.severity:<5} {finding.rule}  {finding.path or '/'}: {finding.message}")
        print(f"{report.summary.error} error(s), {report.summary.warn} warning(s), {report.summary.info} info")
    return 1 if report.blocking else 0


def _schema_version(schema: dict) -> str | None:
    """An event schema's version: the last segment of its `$id` when that is semver."""
    identifier = schema.get("$id")
    return str(identifier).rstrip("/").rsplit("/", 1)[-1] if identifier else None


def _serve(args: argparse.Namespace) -> int:
    config = gateway_config.load(args.config)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port), ("server", args.server)) if v}
    config = msgspec.structs.replace(config, **overrides)
    process = None
    if args.demo:
        from gateway.demo.launch import prepare

        config, process = prepare(config)
    from gateway.server import serve

    # uvicorn shuts down on SIGTERM, then raises the signal again: as an exception here, so that the
    # demo's upstream below is stopped too (the default action would end the process on the spot)
    signal.signal(signal.SIGTERM, _terminated)
    try:
        serve(config)
    except KeyboardInterrupt:
        pass
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=10)
    return 0


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    sys.exit(main())
