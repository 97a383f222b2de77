"""Provider verification: schemathesis against a live provider for one contract version.

Each operation gets `max_examples` generated requests (valid ones: a provider must accept
what its contract promises); every response is checked (no 5xx, documented status, media
type, headers and schema). A failure is reported once per kind, with the curl command that
reproduces it.
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


def verify(document: dict[str, Any], base_url: str, *, contract: str = "", version: str = "",
           max_examples: int = 20, headers: dict[str, str] | None = None) -> VerificationReport:
    """Run schemathesis over every operation of `document` against `base_url`."""
    import requests
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable

    schema = schemathesis.openapi.from_dict(document)
    session = requests.Session()
    results = []
    for result in schema.get_all_operations():
        operation = result.ok()
        name = f"{operation.method.upper()} {operation.path}"
        failures: dict[str, Failure] = {}
        count = {"examples": 0}
        started = time.perf_counter()

        @settings(max_examples=max_examples, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(operation.as_strategy())
        def run(case: Any) -> None:
            count["examples"] += 1
            response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
            try:
                case.validate_response(response, headers=headers)
            except (Exception, BaseExceptionGroup) as exc:  # schemathesis raises Failure / FailureGroup
                for failure in getattr(exc, "exceptions", None) or [exc]:
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
            failures.setdefault("error", Failure(check="error", message=f"{type(exc).__name__}: {exc}"[:1000],
                                                 curl=""))
        results.append(OperationResult(operation=name, examples=count["examples"], failures=list(failures.values()),
                                       seconds=round(time.perf_counter() - started, 3)))
    return VerificationReport(contract=contract, version=version, base_url=base_url,
                              passed=all(r.passed for r in results), operations=results)


def as_text(report: VerificationReport) -> str:
    """One line per operation; each failure with its reproduction."""
    lines = [f"verify {report.contract}@{report.version} against {report.base_url}"]
    for result in report.operations:
        mark = "PASS" if result.passed else "FAIL"
        lines.append(f"{mark} {result.operation}  {result.examples} example(s), {result.seconds:.1f} s")
        for failure in result.failures:
            detail = [line.strip() for line in failure.message.splitlines() if line.strip()][:4]
            lines.append(f"     {failure.check}: {' | '.join(detail)[:400]}")
            if failure.curl:
                lines.append(f"     reproduce: {failure.curl}")
    failed = sum(1 for r in report.operations if not r.passed)
    lines.append(f"{len(report.operations) - failed} passed, {failed} failed")
    return "\n".join(lines)


def as_junit(report: VerificationReport) -> str:
    """JUnit XML: one test case per operation."""
    cases = []
    for result in report.operations:
        name = quoteattr(result.operation)
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
                      f'tests="{len(report.operations)}" failures="{failures}">', *cases, "</testsuite>"])

