"""Provider verification: schemathesis against a live provider for one contract version.

Each operation gets `max_examples` generated requests (valid ones: a provider must accept
what its contract promises, or refuse it with a status the operation documents, such as a
422 business-rule problem); every response is checked (no 5xx, documented status, media
type, headers and schema). A failure is reported once per kind, with the curl command that
reproduces it. A team can leave out operations or checks by name, and `safe_only` sends
nothing that could create or change data in the provider.
"""

from __future__ import annotations

import time
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import msgspec


class Failure(msgspec.Struct, frozen=True, kw_only=True):
    """One kind of failure on one operation, with a way to reproduce it."""

    check: str
    message: str
    curl: str


class OperationResult(msgspec.Struct, kw_only=True):
    """What verifying one operation found."""

    operation: str
    examples: int
    failures: list[Failure]
    seconds: float
    skipped: str = ""  # why it was not run: "excluded", "unsafe method (--safe-only)"

    @property
    def passed(self) -> bool:
        """No failure."""
        return not self.failures


class VerificationReport(msgspec.Struct, kw_only=True):
    """The whole run."""

    contract: str
    version: str
    base_url: str
    passed: bool
    operations: list[OperationResult]


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class MissingExtra(Exception):
    """schemathesis (the `verify` extra) is not installed."""


class VerifyOptions(msgspec.Struct, frozen=True, kw_only=True):
    """What to run: examples per operation, extra headers, and what a team leaves out."""

    max_examples: int = 20
    headers: dict[str, str] = {}
    exclude_operations: frozenset[str] = frozenset()  # "METHOD /path" or an operationId
    exclude_checks: frozenset[str] = frozenset()  # schemathesis check names, e.g. positive_data_acceptance
    safe_only: bool = False  # only GET, HEAD and OPTIONS: nothing is created or changed in the provider


def check_names() -> list[str]:
    """The names `exclude_checks` accepts."""
    _load()
    from schemathesis.checks import CHECKS, load_all_checks

    load_all_checks()
    return [check.__name__ for check in CHECKS.get_all()]


def verify(document: dict[str, Any], base_url: str, *, contract: str = "", version: str = "",
           options: VerifyOptions = VerifyOptions()) -> VerificationReport:
    """Run schemathesis over every operation of `document` against `base_url`."""
    _load()
    import requests
    import schemathesis
    from schemathesis.checks import CHECKS
    from schemathesis.core.result import Ok

    excluded = [check for check in CHECKS.get_all() if check.__name__ in options.exclude_checks]
    schema = schemathesis.openapi.from_dict(document)
    session = requests.Session()
    results = []
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):  # an operation schemathesis cannot read: a failure, not a crash
            results.append(OperationResult(operation=str(result.err())[:200], examples=0, seconds=0.0, failures=[
                Failure(check="error", message=str(result.err())[:1000], curl="")]))
            continue
        operation = result.ok()
        name = f"{operation.method.upper()} {operation.path}"
        skipped = _skip_reason(operation, name, options)
        if skipped:
            results.append(OperationResult(operation=name, examples=0, failures=[], seconds=0.0, skipped=skipped))
            continue
        started = time.perf_counter()
        examples, failures = _run_operation(operation, base_url, session, options, excluded)
        results.append(OperationResult(operation=name, examples=examples, failures=failures,
                                       seconds=round(time.perf_counter() - started, 3)))
    return VerificationReport(contract=contract, version=version, base_url=base_url,
                              passed=all(r.passed for r in results), operations=results)


def _load() -> None:
    try:
        import schemathesis  # noqa: F401
    except ImportError:
        raise MissingExtra('schemathesis is not installed: pip install "govgate[verify]"') from None


def _skip_reason(operation: Any, name: str, options: VerifyOptions) -> str:
    if name in options.exclude_operations or operation.definition.raw.get("operationId") in options.exclude_operations:
        return "excluded"
    if options.safe_only and operation.method.upper() not in SAFE_METHODS:
        return "unsafe method (--safe-only)"
    return ""


def _run_operation(operation: Any, base_url: str, session: Any, options: VerifyOptions,
                   excluded: list[Any]) -> tuple[int, list[Failure]]:
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable

    documented = {str(status) for status in operation.definition.raw.get("responses", {})}
    failures: dict[str, Failure] = {}
    count = {"examples": 0}
    headers = options.headers or None

    @settings(max_examples=options.max_examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(operation.as_strategy())
    def run(case: Any) -> None:
        count["examples"] += 1
        response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
        try:
            case.validate_response(response, headers=headers, excluded_checks=excluded)
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis raises Failure / FailureGroup
            for failure in getattr(exc, "exceptions", None) or [exc]:
                if _documented_refusal(failure, documented):
                    continue
                title = getattr(failure, "title", type(failure).__name__)
                if title not in failures:
                    message = str(getattr(failure, "message", "") or failure)[:1000]
                    failures[title] = Failure(check=title, message=message,
                                              curl=case.as_curl_command(headers=headers, base_url=base_url))

    try:
        run()
    except Unsatisfiable:
        pass  # a schema hypothesis cannot satisfy: nothing to send, nothing to fail
    except (Exception, BaseExceptionGroup) as exc:  # the provider cannot be reached, for instance
        failures.setdefault("error", Failure(check="error", message=f"{type(exc).__name__}: {exc}"[:1000], curl=""))
    return count["examples"], list(failures.values())


def _documented_refusal(failure: Any, documented: set[str]) -> bool:
    """A schema-valid request refused with a status the operation documents (a business rule, an unknown cursor).

    The contract promises that answer, so the provider keeps it; the answer's body is still checked
    against the documented schema by the other checks.
    """
    status = getattr(failure, "status_code", None)
    return type(failure).__name__ == "RejectedPositiveData" and status is not None and (
        str(status) in documented or f"{str(status)[0]}XX" in documented)


def as_text(report: VerificationReport) -> str:
    """One line per operation; each failure with its reproduction."""
    lines = [f"verify {report.contract}@{report.version} against {report.base_url}"]
    for result in report.operations:
        if result.skipped:
            lines.append(f"SKIP {result.operation}  {result.skipped}")
            continue
        mark = "PASS" if result.passed else "FAIL"
        lines.append(f"{mark} {result.operation}  {result.examples} example(s), {result.seconds:.1f} s")
        for failure in result.failures:
            detail = [line.strip() for line in failure.message.splitlines() if line.strip()][:4]
            lines.append(f"     {failure.check}: {' | '.join(detail)[:400]}")
            if failure.curl:
                lines.append(f"     reproduce: {failure.curl}")
    failed = sum(1 for r in report.operations if not r.passed)
    skipped = sum(1 for r in report.operations if r.skipped)
    lines.append(f"{len(report.operations) - failed - skipped} passed, {failed} failed"
                 + (f", {skipped} skipped" if skipped else ""))
    return "\n".join(lines)


def as_junit(report: VerificationReport) -> str:
    """JUnit XML: one test case per operation."""
    cases = []
    for result in report.operations:
        name = quoteattr(result.operation)
        if result.skipped:
            cases.append(f'    <testcase classname="govgate.verify" name={name} time="0">'
                         f'<skipped message={quoteattr(result.skipped)}/></testcase>')
            continue
        if result.passed:
            cases.append(f'    <testcase classname="govgate.verify" name={name} time="{result.seconds}"/>')
            continue
        body = "\n".join(f"{f.check}: {f.message}\n{f.curl}" for f in result.failures)
        cases.append(f'    <testcase classname="govgate.verify" name={name} time="{result.seconds}">\n'
                     f'      <failure message={quoteattr(result.failures[0].check)}>{escape(body)}</failure>\n'
                     "    </testcase>")
    failures = sum(1 for r in report.operations if not r.passed)
    return "\n".join(['<?xml version="1.0" encoding="UTF-8"?>',
                      f'<testsuite name={quoteattr(f"verify {report.contract}@{report.version}")} '
                      f'tests="{len(report.operations)}" failures="{failures}" '
                      f'skipped="{sum(1 for r in report.operations if r.skipped)}">', *cases, "</testsuite>"])

