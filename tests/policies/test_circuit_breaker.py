"""Circuit breaker: opens on upstream failures only, probes after the cool-down, closes on success."""

from __future__ import annotations

import msgspec
import pytest

from policies.circuit_breaker import CircuitBreaker, CircuitBreakerConfig, CircuitBreakerPolicy
from policies.context import RequestContext
from policies.request_validation import validation_failed
from registry.problems import Problem, ProblemType


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock, **config: object) -> tuple[CircuitBreaker, list[str]]:
    changes: list[str] = []
    settings = CircuitBreakerConfig(**config)  # type: ignore[arg-type]
    return CircuitBreaker(settings, "erp", clock=clock,
                          on_state_change=lambda name, state: changes.append(f"{name}:{state}")), changes


def trip(circuit: CircuitBreaker) -> None:
    while circuit.state != "open":
        assert circuit.allow()
        circuit.record(False)


Outcome = int | Problem | Exception | str


def send(policy: CircuitBreakerPolicy, outcome: Outcome) -> Problem | None:
    """One request through the policy as the proxy runs it; the problem it ended with, if any.

    `outcome` is the upstream's status, a problem raised after this policy (by the upstream call
    or a later policy), a bug, or "answered" (a later policy answered without the upstream).
    """
    ctx = RequestContext(method="GET", path="/orders/1", raw_path="/orders/1", query_string="", headers={},
                         client="127.0.0.1", scheme="http", host="gateway")
    try:
        policy.on_request(ctx)
        if isinstance(outcome, Problem) and outcome.slug in ("upstream-unavailable", "upstream-timeout"):
            ctx.upstream_failure = outcome.slug  # as the upstream client leaves it when it gives up
        if isinstance(outcome, Exception):
            raise outcome
        if outcome == "answered":
            ctx.answer(200, [], b"{}")
        else:
            ctx.response_status = ctx.upstream_status = outcome  # type: ignore[assignment]
    except Problem as problem:
        ctx.problem, ctx.response_status = problem, problem.status
        return problem
    except Exception:
        ctx.response_status = 500
    finally:
        policy.on_finish(ctx)
    return None


UNAVAILABLE = ProblemType(502, "upstream-unavailable", "Upstream unavailable")("connection refused")
TIMEOUT = ProblemType(504, "upstream-timeout", "Upstream timed out")("no answer within 15 s")
SATURATED = ProblemType(503, "upstream-saturated", "Upstream saturated")("shed", headers={"Retry-After": "1"})


def test_opens_after_consecutive_failures_and_a_success_resets_the_count() -> None:
    circuit, changes = breaker(Clock(), consecutive_failures=3)
    for success in (False, False, True, False, False):
        circuit.record(success)
    assert circuit.state == "closed" and circuit.allow()
    circuit.record(False)
    assert circuit.state == "open" and not circuit.allow()
    assert circuit.opened_total == 1 and changes == ["erp:open"]


def test_opens_when_the_error_rate_over_the_window_is_exceeded() -> None:
    circuit, _ = breaker(Clock(), consecutive_failures=100, error_rate=0.5, min_requests=10)
    for _ in range(5):
        circuit.record(False)
        circuit.record(True)
    assert circuit.state == "closed"  # 5 of 10 is not over 50 %
    circuit.record(False)
    assert circuit.state == "open" and circuit.opened_total == 1


def test_the_error_rate_needs_min_requests() -> None:
    circuit, _ = breaker(Clock(), consecutive_failures=100, min_requests=20)
    for count in range(19):
        circuit.record(count % 3 == 0)  # two thirds fail, but only 19 outcomes
    assert circuit.state == "closed"


def test_failures_older_than_the_window_no_longer_count() -> None:
    clock = Clock()
    circuit, _ = breaker(clock, consecutive_failures=100, error_rate=0.5, min_requests=10, window_seconds=10)
    for _ in range(5):
        circuit.record(False)
    clock.now += 10.5
    for success in [True] * 6 + [False] * 4:
        circuit.record(success)
    assert circuit.state == "closed"  # 4 of the last 10; with the old ones it would be 9 of 15


def test_a_successful_probe_after_the_cool_down_closes_the_circuit() -> None:
    clock = Clock()
    circuit, changes = breaker(clock, consecutive_failures=2, open_seconds=5)
    trip(circuit)
    clock.now += 4.9
    assert not circuit.allow() and circuit.retry_after() == pytest.approx(0.1)
    clock.now += 0.1
    assert circuit.allow() and circuit.state == "half_open"
    assert not circuit.allow()  # one probe at a time
    circuit.record(True)
    assert circuit.state == "closed" and circuit.allow()
    assert changes == ["erp:open", "erp:half_open", "erp:closed"]


def test_a_failed_probe_reopens_for_another_cool_down() -> None:
    clock = Clock()
    circuit, _ = breaker(clock, consecutive_failures=1, open_seconds=5)
    trip(circuit)
    clock.now += 5
    assert circuit.allow()
    circuit.record(False)
    assert circuit.state == "open" and circuit.opened_total == 2
    assert circuit.retry_after() == 5 and not circuit.allow()


def test_several_probes_must_all_succeed_to_close() -> None:
    clock = Clock()
    circuit, _ = breaker(clock, consecutive_failures=1, half_open_probes=2)
    trip(circuit)
    clock.now += 5
    assert circuit.allow() and circuit.allow() and not circuit.allow()
    circuit.record(True)
    assert circuit.state == "half_open"  # one success of two
    assert circuit.allow() and not circuit.allow()  # its place goes to a new probe, still two at once
    circuit.record(True)
    assert circuit.state == "closed"


def test_an_outcome_from_before_the_last_transition_is_not_taken_for_the_probe() -> None:
    clock = Clock()
    circuit, _ = breaker(clock, consecutive_failures=1)
    slow_epoch = circuit.epoch  # let through while closed, answers much later
    trip(circuit)
    clock.now += 5
    assert circuit.allow()
    circuit.record(True, epoch=slow_epoch)
    assert circuit.state == "half_open" and not circuit.allow()


def test_the_policy_answers_503_with_the_seconds_until_the_next_probe() -> None:
    clock = Clock()
    circuit, _ = breaker(clock, consecutive_failures=1, open_seconds=5)
    policy = CircuitBreakerPolicy(CircuitBreakerConfig(), circuit)
    assert send(policy, UNAVAILABLE) is UNAVAILABLE and circuit.state == "open"
    clock.now += 2.5
    problem = send(policy, 200)
    assert problem is not None and (problem.status, problem.slug) == (503, "circuit-open")
    assert problem.headers == {"Retry-After": "3"} and "'erp'" in problem.detail
    assert circuit.state == "open" and circuit.opened_total == 1  # a refusal records nothing


@pytest.mark.parametrize("outcome", [UNAVAILABLE, TIMEOUT, 500, 503], ids=["502", "504", "upstream-500", "upstream-503"])
def test_upstream_failures_are_counted(outcome: Outcome) -> None:
    circuit, _ = breaker(Clock(), consecutive_failures=1)
    send(CircuitBreakerPolicy(CircuitBreakerConfig(), circuit), outcome)
    assert circuit.state == "open"


@pytest.mark.parametrize("outcome", [
    validation_failed([{"message": "missing sku"}]),
    ProblemType(429, "rate-limited", "Too many requests")("slow down", headers={"Retry-After": "1"}),
    SATURATED,
    ProblemType(502, "upstream-not-configured", "Upstream not configured")("no address"),
    RuntimeError("a bug in a later policy"),
    "answered",
    200, 404, 499,
], ids=["400", "429", "503-saturated", "502-not-configured", "500-bug", "answered", "200", "404", "499"])
def test_gateway_side_outcomes_and_upstream_successes_do_not_count_as_failures(outcome: Outcome) -> None:
    circuit, _ = breaker(Clock(), consecutive_failures=1)
    policy = CircuitBreakerPolicy(CircuitBreakerConfig(), circuit)
    for _ in range(5):
        send(policy, outcome)
    assert circuit.state == "closed" and circuit.opened_total == 0


def test_a_probe_the_gateway_stops_before_the_upstream_frees_its_place() -> None:
    clock = Clock()
    circuit, _ = breaker(clock, consecutive_failures=1)
    policy = CircuitBreakerPolicy(CircuitBreakerConfig(), circuit)
    send(policy, TIMEOUT)
    clock.now += 5
    assert send(policy, SATURATED) is SATURATED and circuit.state == "half_open"
    assert send(policy, 200) is None and circuit.state == "closed"


def test_only_one_probe_goes_while_half_open() -> None:
    clock = Clock()
    circuit, _ = breaker(clock, consecutive_failures=1)
    policy = CircuitBreakerPolicy(CircuitBreakerConfig(), circuit)
    send(policy, 500)
    clock.now += 5
    probe = RequestContext(method="GET", path="/", raw_path="/", query_string="", headers={},
                           client="127.0.0.1", scheme="http", host="gateway")
    policy.on_request(probe)  # the probe is out
    refused = send(policy, 200)
    assert refused is not None and refused.slug == "circuit-open" and refused.headers["Retry-After"] == "1"
    probe.response_status = probe.upstream_status = 204
    policy.on_finish(probe)
    assert circuit.state == "closed"


@pytest.mark.parametrize("document", [
    b'{"error_rate": 0}', b'{"error_rate": 1.5}', b'{"consecutive_failures": 0}',
    b'{"open_seconds": 0}', b'{"half_open_probes": 0}', b'{"failures": 3}',
])
def test_bad_configs_are_refused_at_load_time(document: bytes) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(document, type=CircuitBreakerConfig)
