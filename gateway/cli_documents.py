"""`govgate lint|diff|bundle|verify`: what a pipeline runs on a contract document."""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from gateway import remote
from registry.compat.events import MODES
from registry.compat.formats import FORMATS

LINT_EXIT = "Exit codes: 0 no error findings; 1 error findings; 2 input unreadable."
DIFF_EXIT = ("Exit codes: 0 nothing at or above --fail-on; 1 something is; 2 input unreadable, the published "
             "document cannot be fetched, or the pair is too large to compare within the engine's limits; "
             "3 internal error (a bug, with its traceback on stderr), never a verdict.")
BUNDLE_EXIT = "Exit codes: 0 written; 2 input unreadable or a $ref that cannot be bundled."
VERIFY_EXIT = ("Exit codes: 0 every operation passed; 1 a check failed; 2 the contract or the provider is "
               "unreachable, a usage error, or schemathesis is not installed (pip install \"govgate[verify]\").")


def add_commands(commands: Any) -> None:
    """Add lint, diff, bundle and verify to the `govgate` parser."""
    lint = commands.add_parser("lint", help="check a contract document against the governance ruleset",
                               description=LINT_EXIT)
    lint.add_argument("file", type=Path, help="an OpenAPI document or event JSON Schema (YAML or JSON)")
    lint.add_argument("--ruleset", type=Path, help="the organisation's ruleset (default: the bundled one)")
    lint.add_argument("--format", choices=["text", "json"], default="text", help="output format (default text)")

    diff = commands.add_parser(
        "diff", help="compare two contract documents and report breaking changes",
        description="Compare two OpenAPI 3.0/3.1 documents (or two JSON Schemas of an event) offline, or a file "
                    "with what the registry published (--against). " + DIFF_EXIT)
    diff.add_argument("documents", type=Path, nargs="+", metavar="[OLD] NEW",
                      help="the published (old) and the proposed (new) document, YAML or JSON; "
                           "only NEW with --against")
    diff.add_argument("--against", metavar="NAME[@vMAJOR]",
                      help="compare NEW with the newest published version of this contract (of that major) "
                           "in the registry at --url / $GOVGATE_URL")
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
    diff.add_argument("--url", help="with --against: the govgate server (default: $GOVGATE_URL)")
    diff.add_argument("--token", help="with --against: a registry token (default: $GOVGATE_TOKEN)")

    bundle = commands.add_parser("bundle", help="write a document with its relative-file $refs bundled in",
                                 description="What `contract propose` sends: every $ref to a sibling file copied "
                                             "into components. " + BUNDLE_EXIT)
    bundle.add_argument("file", type=Path, help="an OpenAPI document or event JSON Schema (YAML or JSON)")
    bundle.add_argument("-o", "--output", type=Path,
                        help="write here (JSON when it ends in .json, else YAML) instead of printing YAML")

    _add_verify(commands)


def _add_verify(commands: Any) -> None:
    verify = commands.add_parser(
        "verify", help="run schemathesis against a provider for a contract version", description=(
            "Send generated schema-valid requests to the provider and check every answer against the contract. "
            "A refusal the operation documents (a 422 business rule, say) is accepted. " + VERIFY_EXIT))
    verify.add_argument("target", metavar="CONTRACT[@VERSION]",
                        help="CONTRACT@VERSION (fetched from the registry), or a name for --file")
    verify.add_argument("--base-url", required=True, help="the provider, e.g. http://erp.internal:8000")
    verify.add_argument("--file", type=Path, help="verify this local document instead of the registered one")
    verify.add_argument("--max-examples", type=int, default=20, help="generated requests per operation (default 20)")
    verify.add_argument("--header", action="append", default=[], help="extra header, e.g. 'Authorization: Bearer X'")
    verify.add_argument("--exclude-operation", action="append", default=[], metavar="OPERATION",
                        help="leave out an operation: 'METHOD /path' or its operationId (repeatable)")
    verify.add_argument("--exclude-check", action="append", default=[], metavar="CHECK",
                        help="leave out a schemathesis check by name, e.g. positive_data_acceptance (repeatable)")
    verify.add_argument("--safe-only", action="store_true",
                        help="only GET, HEAD and OPTIONS operations: nothing is created or changed in the provider")
    verify.add_argument("--junit", type=Path, help="also write a JUnit XML report here")
    verify.add_argument("--format", choices=["text", "json"], default="text", help="output format (default text)")
    verify.add_argument("--record", action="store_true",
                        help="record the result in the registry against the version and --environment")
    verify.add_argument("--environment", default="default", help="the provider's environment, e.g. staging")
    verify.add_argument("--url", help="the govgate registry (default: $GOVGATE_URL)")
    verify.add_argument("--token", help="a registry token (default: $GOVGATE_TOKEN)")


def _fail(prog: str, message: str) -> int:
    print(f"govgate {prog}: {message}", file=sys.stderr)
    return 2


def _diff(args: argparse.Namespace) -> int:
    from registry.compat.engine import CheckFailed, DiffTooLarge, diff_openapi
    from registry.compat.events import diff_event_schemas
    from registry.documents import load_file
    from registry.errors import InvalidDocument

    expected = 1 if args.against else 2
    if len(args.documents) != expected:
        return _fail("diff", "give OLD and NEW, or --against NAME[@vMAJOR] and NEW")
    try:
        new = load_file(args.documents[-1])
        old = _published(args) if args.against else load_file(args.documents[0])
    except InvalidDocument as exc:
        return _fail("diff", f"{exc.detail}" + "".join(f"\n  {e}" for e in exc.errors))
    except (remote.UsageError, remote.ServerError) as exc:
        return _fail("diff", str(exc))
    if ("openapi" in old) != ("openapi" in new):
        return _fail("diff", "one document is OpenAPI and the other is not")
    try:
        if "openapi" in old:
            report = diff_openapi(old, new, minor_bump_level=args.minor_bump_level)
        else:
            report = diff_event_schemas([old], new, mode=args.mode, required_with_default=args.required_with_default,
                                        old_version=_schema_version(old), new_version=_schema_version(new),
                                        minor_bump_level=args.minor_bump_level)
    except DiffTooLarge as exc:
        return _fail("diff", f"refused: {exc}")
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


def _published(args: argparse.Namespace) -> dict[str, Any]:
    from gateway.cli_registry import fetch_published

    return fetch_published(remote.Client(*remote.credentials(args)), args.against)


def _schema_version(schema: dict) -> str | None:
    """An event schema's version: the last segment of its `$id` when that is semver."""
    identifier = schema.get("$id")
    return str(identifier).rstrip("/").rsplit("/", 1)[-1] if identifier else None


def _lint(args: argparse.Namespace) -> int:
    from registry.documents import load_file
    from registry.errors import InvalidDocument
    from registry.lint import InvalidRuleset, detect_kind, lint, load_ruleset

    try:
        document = load_file(args.file)
        ruleset = load_ruleset(args.ruleset)
    except (InvalidDocument, InvalidRuleset) as exc:
        return _fail("lint", str(getattr(exc, "detail", exc)))
    except OSError as exc:
        return _fail("lint", f"cannot read {exc.filename}: {exc.strerror}")
    report = lint(document, kind=detect_kind(document), ruleset=ruleset)
    if args.format == "json":
        print(msgspec.json.encode(report).decode())
    else:
        for finding in report.findings:
            print(f"{finding.severity:<5} {finding.rule}  {finding.path or '/'}: {finding.message}")
        print(f"{report.summary.error} error(s), {report.summary.warn} warning(s), {report.summary.info} info")
    return 1 if report.blocking else 0


def _bundle(args: argparse.Namespace) -> int:
    import yaml

    from registry.documents import load_file
    from registry.errors import InvalidDocument

    try:
        document = load_file(args.file)
    except InvalidDocument as exc:
        return _fail("bundle", f"{exc.detail}" + "".join(f"\n  {e}" for e in exc.errors))
    as_json = args.output is not None and args.output.suffix == ".json"
    text = (json.dumps(document, indent=2, ensure_ascii=False) + "\n" if as_json
            else yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
    return 0


def _verify(args: argparse.Namespace) -> int:
    from gateway.verify import MissingExtra, VerifyOptions, as_junit, as_text, check_names, verify

    try:
        unknown = sorted(set(args.exclude_check) - set(check_names()))
        if unknown:
            return _fail("verify", f"no check named {', '.join(unknown)}; the checks are {', '.join(check_names())}")
        name, version, document = _verify_target(args)
    except MissingExtra as exc:
        return _fail("verify", str(exc))
    except (remote.UsageError, remote.ServerError) as exc:
        return _fail("verify", str(exc))
    headers = dict(h.split(":", 1) for h in args.header if ":" in h)
    options = VerifyOptions(max_examples=args.max_examples, headers={k.strip(): v.strip() for k, v in headers.items()},
                            exclude_operations=frozenset(args.exclude_operation),
                            exclude_checks=frozenset(args.exclude_check), safe_only=args.safe_only)
    report = verify(document, args.base_url.rstrip("/"), contract=name, version=version, options=options)
    if args.junit:
        args.junit.write_text(as_junit(report))
    print(msgspec.json.encode(report).decode() if args.format == "json" else as_text(report))
    if args.record:
        failed = [r.operation for r in report.operations if not r.passed]
        summary = f"{len(report.operations) - len(failed)} passed, {len(failed)} failed" + (
            f": {', '.join(failed)}" if failed else "")
        try:
            client = remote.Client(*remote.credentials(args))
            client.post(f"/registry/contracts/{name}/versions/{report.version}/verifications", {
                "environment": args.environment, "passed": report.passed, "base_url": report.base_url,
                "summary": summary, "report": msgspec.to_builtins(report)})
        except (remote.UsageError, remote.ServerError) as exc:
            return _fail("verify", f"could not record the result: {exc}")
        print(f"recorded against {name}@{report.version} in {args.environment}")
    if any(f.check == "error" for r in report.operations for f in r.failures):
        return 2
    return 0 if report.passed else 1


def _verify_target(args: argparse.Namespace) -> tuple[str, str, dict[str, Any]]:
    """The contract's name, its version and the document to verify."""
    from registry.documents import load_file
    from registry.errors import InvalidDocument

    name, _, version = args.target.partition("@")
    if args.file is not None:
        try:
            document = load_file(args.file)
        except InvalidDocument as exc:
            raise remote.UsageError(exc.detail) from None
        return name, version or str(document.get("info", {}).get("version", "")), document
    if not version:
        raise remote.UsageError("say CONTRACT@VERSION, or give --file")
    client = remote.Client(*remote.credentials(args))
    return name, version, client.get(f"/registry/contracts/{name}/versions/{version}/document")


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "lint": _lint, "diff": _diff, "bundle": _bundle, "verify": _verify}
