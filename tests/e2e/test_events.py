"""Events through real gateway processes on a real Redis: publish, de-duplicate, consume, dead letters, replay."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import httpx
import pytest
import redis

from tests.conftest import ROOT, free_port, spawn, stop, wait_http
from tests.e2e.conftest import GatewayProcess, running_gateway

pytestmark = pytest.mark.e2e
INVENTORY = "/events/events.inventory-adjusted/v1"
RETURNS = "/events/events.return-received/v1"
STRUCTURED = {"content-type": "application/cloudevents+json"}
EVENT_CONTRACTS = ("events.inventory-adjusted", "events.order-shipped", "events.return-received")
ADJUSTMENT = {"sku": "TSHIRT-BLK-M", "location": "BE-01-03", "delta": -3, "reason": "cycle-count",
              "onHandAfter": 137, "adjustedAt": "2025-11-28T06:45:00Z"}


class Events:
    """The gateway, a producer and a consumer client, and a direct line to Redis."""

    def __init__(self, gateway: GatewayProcess, redis_client: redis.Redis, prefix: str) -> None:
        self.gateway = gateway
        self.redis = redis_client
        self.prefix = prefix
        self.producer_token = gateway.gateway_token("channel-wms", ["events:publish"])
        self.producer = httpx.Client(base_url=gateway.url, timeout=10,
                                     headers={"Authorization": f"Bearer {self.producer_token}"})
        self.consumer_token = gateway.gateway_token("erp-sync", ["events:consume"])
        self.consumer = httpx.Client(base_url=gateway.url, timeout=10,
                                     headers={"Authorization": f"Bearer {self.consumer_token}"})

    def stream(self, contract: str = "events.inventory-adjusted") -> str:
        return f"{self.prefix}ev:{{{contract}:v1}}"

    def join(self, group: str, path: str = INVENTORY) -> None:
        """Create a consumer group at the end of the stream."""
        assert self.read(group, path, **{"from": "latest"})["events"] == []

    def read(self, group: str, path: str = INVENTORY, **params: Any) -> dict[str, Any]:
        response = self.consumer.get(path, params={"group": group, "count": 100, **params})
        assert response.status_code == 200, response.text
        return response.json()


def adjustment(event_id: str, subject: str = "TSHIRT-BLK-M", **data: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": event_id, "source": "urn:wms:be-01",
            "type": "com.retail.wms.inventory.adjusted", "subject": subject, "time": "2025-11-28T06:45:00Z",
            "data": {**ADJUSTMENT, "sku": subject, **data}}


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory, sample_erp: str, catalog: list[dict],
           redis_url: str) -> Iterator[Events]:
    prefix = f"govgate-test:{uuid.uuid4().hex[:8]}:events:"
    state = {"backend": "redis", "redis_url": redis_url, "key_prefix": prefix}
    client = redis.Redis.from_url(redis_url)
    try:
        with running_gateway(tmp_path_factory.mktemp("events"), sample_erp, catalog, state=state,
                             events={"visibility_timeout_seconds": 0.4, "max_deliveries": 2}) as gateway:
            for consumer_id, scope in (("channel-wms", "events:publish"), ("erp-sync", "events:consume")):
                created = gateway.admin.post("/registry/consumers", json={"id": consumer_id, "plan": "test",
                                                                          "scopes": [scope]})
                assert created.status_code == 201, created.text
                for contract in EVENT_CONTRACTS:
                    gateway.admin.post(f"/registry/consumers/{consumer_id}/subscriptions",
                                       json={"contract": contract, "major": 1})
            yield Events(gateway, client, prefix)
    finally:
        for key in client.scan_iter(match=prefix + "*", count=1000):
            client.delete(key)
        client.close()


@contextlib.contextmanager
def another_gateway(events: Events, **state: Any) -> Iterator[tuple[subprocess.Popen, str]]:
    """One more gateway process on the same registry (and, unless overridden, the same Redis)."""
    config = json.loads(events.gateway.config_path.read_text())
    config["state"] = {**config["state"], **state}
    path = events.gateway.config_path.with_name(f"gateway-{uuid.uuid4().hex[:6]}.yaml")
    path.write_text(json.dumps(config))
    port = free_port()
    process = spawn(["-m", "gateway.cli", "serve", "--config", str(path), "--port", str(port)], cwd=path.parent)
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", process=process)
        yield process, f"http://127.0.0.1:{port}"
    finally:
        stop(process)


def test_structured_binary_and_batch_events_are_stored_before_the_202(events: Events) -> None:
    structured = events.producer.post(INVENTORY, content=json.dumps(adjustment("modes-1", "MODES-A")),
                                      headers={**STRUCTURED, "X-Correlation-ID": "modes-0001"})
    assert structured.status_code == 202, structured.text
    assert structured.headers["X-Correlation-ID"] == "modes-0001" and "RateLimit" in structured.headers
    receipt = structured.json()
    assert receipt["id"] == "modes-1" and receipt["sequence"] == 1 and receipt["duplicate"] is False
    binary = events.producer.post(INVENTORY, content=json.dumps({**ADJUSTMENT, "sku": "MODES-A"}), headers={
        "content-type": "application/json", "ce-specversion": "1.0", "ce-id": "modes-2",
        "ce-source": "urn%3Awms%3Abe-01", "ce-type": "com.retail.wms.inventory.adjusted", "ce-subject": "MODES-A"})
    assert binary.status_code == 202, binary.text
    assert binary.json()["sequence"] == 2
    batch = events.producer.post(INVENTORY, headers={"content-type": "application/cloudevents-batch+json"},
                                 content=json.dumps([adjustment(f"modes-{n}", "MODES-B") for n in range(3, 6)]))
    assert batch.status_code == 202, batch.text
    receipts = batch.json()["receipts"]
    assert [r["sequence"] for r in receipts] == [1, 2, 3]
    for stored in [receipt, binary.json(), *receipts]:
        [(_, fields)] = events.redis.xrange(events.stream(), stored["streamId"], stored["streamId"])
        event = json.loads(fields[b"event"])
        assert event["id"] == stored["id"] and event["govgatesequence"] == stored["sequence"]
        assert fields[b"producer"] == b"channel-wms"
    assert json.loads(events.redis.xrange(events.stream(), binary.json()["streamId"], "+")[0][1][b"event"])[
        "source"] == "urn:wms:be-01"


def test_a_duplicate_storm_appends_each_event_once(events: Events) -> None:
    """20 events, each sent 10 times over 32 connections at once: 20 entries; copies answer 200 with the receipt."""
    before = events.redis.xlen(events.stream())
    bodies = [json.dumps(adjustment(f"storm-{n % 20}", f"STORM-{n % 4}")) for n in range(200)]

    async def storm() -> list[tuple[int, dict[str, Any]]]:
        connector = aiohttp.TCPConnector(limit=32)
        headers = {**STRUCTURED, "Authorization": f"Bearer {events.producer_token}"}
        async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
            async def send(body: str) -> tuple[int, dict[str, Any]]:
                async with session.post(events.gateway.url + INVENTORY, data=body) as response:
                    return response.status, await response.json(content_type=None)
            return await asyncio.gather(*(send(b) for b in bodies))

    answers = asyncio.run(storm())
    assert sorted(status for status, _ in answers) == [200] * 180 + [202] * 20
    assert events.redis.xlen(events.stream()) - before == 20
    stream_ids: dict[str, set[str]] = {}
    for _, receipt in answers:
        stream_ids.setdefault(receipt["id"], set()).add(receipt["streamId"])
    assert len(stream_ids) == 20 and all(len(ids) == 1 for ids in stream_ids.values())
    stored = [json.loads(f[b"event"]) for _, f in events.redis.xrange(events.stream())]
    for subject in ("STORM-0", "STORM-1", "STORM-2", "STORM-3"):
        assert [e["govgatesequence"] for e in stored if e["subject"] == subject] == [1, 2, 3, 4, 5]


def test_an_event_answered_202_is_in_the_stream_after_the_gateway_is_killed(events: Events) -> None:
    """Publish over 8 connections, kill -9 the gateway and its worker right after the tenth 202, then look in Redis."""
    with another_gateway(events) as (process, url):
        accepted: list[dict[str, Any]] = []

        def kill() -> None:
            workers = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
            for pid in [process.pid, *map(int, workers)]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

        async def publish() -> None:
            headers = {**STRUCTURED, "Authorization": f"Bearer {events.producer_token}"}
            async with aiohttp.ClientSession(headers=headers) as session:
                async def producer(worker: int) -> None:
                    for n in range(200):
                        try:
                            async with session.post(url + INVENTORY, data=json.dumps(
                                    adjustment(f"kill-{worker}-{n}", f"KILL-{worker}"))) as response:
                                if response.status == 202:
                                    accepted.append(await response.json())
                                    if len(accepted) == 10:
                                        kill()
                        except aiohttp.ClientError:
                            return
                await asyncio.gather(*(producer(w) for w in range(8)))

        asyncio.run(publish())
        assert process.wait(timeout=10) == -signal.SIGKILL
    assert len(accepted) >= 10
    for receipt in accepted:
        entries = events.redis.xrange(events.stream(), receipt["streamId"], receipt["streamId"])
        assert entries, f"{receipt} answered 202 but is not in the stream"
        assert json.loads(entries[0][1][b"event"])["id"] == receipt["id"]


def test_an_invalid_event_is_refused_with_every_error_and_never_reaches_consumers(events: Events) -> None:
    events.join("audit-invalid")  # the group exists and has read everything so far
    before = events.redis.xlen(events.stream())
    bad = adjustment("bad-1", "BAD-1", delta=0, location="nowhere")
    bad["specversion"] = "0.3"
    response = events.producer.post(INVENTORY, content=json.dumps(bad),
                                    headers={**STRUCTURED, "X-Correlation-ID": "bad-0001"})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("/invalid-event") and problem["correlationId"] == "bad-0001"
    assert sorted(e["pointer"] for e in problem["errors"]) == ["/data/delta", "/data/location", "/specversion"]
    batch = [adjustment("bad-2", "BAD-2"), adjustment("bad-3", "BAD-3", reason="theft")]
    response = events.producer.post(INVENTORY, content=json.dumps(batch),
                                    headers={"content-type": "application/cloudevents-batch+json"})
    assert response.status_code == 400
    assert [(e["index"], e["pointer"]) for e in response.json()["errors"]] == [(1, "/data/reason")]
    assert events.redis.xlen(events.stream()) == before  # nothing of either request, the valid event included
    assert events.read("audit-invalid")["events"] == []
    letters = events.gateway.admin.get("/registry/events/events.inventory-adjusted/v1/dead-letters").json()
    refused = {json.loads(json.dumps(x["event"]))["id"]: x for x in letters if x["reason"] == "invalid"}
    assert set(refused) >= {"bad-1", "bad-3"} and "bad-2" not in refused
    assert refused["bad-1"]["correlation"] == "bad-0001" and len(refused["bad-1"]["errors"]) == 3


def test_a_consumer_that_crashes_before_acknowledging_gets_the_entry_again(events: Events) -> None:
    events.join("crash")  # join at the current end of the stream
    receipt = events.producer.post(INVENTORY, content=json.dumps(adjustment("crash-1", "CRASH-1")),
                                   headers=STRUCTURED).json()
    crashing = ("import os, signal, sys, urllib.request; request = urllib.request.Request(sys.argv[1], headers="
                "{'Authorization': 'Bearer ' + sys.argv[2]}); print(urllib.request.urlopen(request).read().decode(), "
                "flush=True); os.kill(os.getpid(), signal.SIGKILL)")
    url = f"{events.gateway.url}{INVENTORY}?group=crash&consumer=crashing&count=10"
    crashed = subprocess.run([sys.executable, "-c", crashing, url, events.consumer_token], capture_output=True,
                             text=True, timeout=30)
    assert crashed.returncode == -signal.SIGKILL
    assert [e["streamId"] for e in json.loads(crashed.stdout)["events"]] == [receipt["streamId"]]
    assert events.read("crash", consumer="healthy")["events"] == []  # within the visibility timeout
    time.sleep(0.5)
    [again] = events.read("crash", consumer="healthy")["events"]
    assert (again["streamId"], again["deliveryCount"]) == (receipt["streamId"], 2)
    assert again["event"]["id"] == "crash-1" and again["event"]["govgatesequence"] == 1
    acked = events.consumer.post(INVENTORY + "/ack", json={"group": "crash", "ids": [again["streamId"]]})
    assert acked.json() == {"group": "crash", "acknowledged": 1}
    time.sleep(0.5)
    assert events.read("crash", consumer="healthy")["events"] == []


def test_dead_letters_are_replayed_by_an_admin_after_the_contract_is_fixed(events: Events, catalog: list[dict]) -> None:
    admin, board = events.gateway.admin, events.gateway.reviewers[0]
    base = "/registry/events/events.return-received/v1"
    schema = next(e for e in catalog if e["name"] == "events.return-received")["loaded"]
    event = {"specversion": "1.0", "id": "rma-1", "source": "urn:returns", "type": "com.retail.returns.return.received",
             "subject": "RMA-1", "data": {**schema["examples"][0], "carrier": "dhl"}}
    assert events.producer.post(RETURNS, content=json.dumps(event), headers=STRUCTURED).status_code == 400
    assert board.get(base + "/dead-letters").status_code == 403
    [letter] = admin.get(base + "/dead-letters").json()
    assert admin.get(f"{base}/dead-letters/{letter['id']}").json() == letter
    still = admin.post(f"{base}/dead-letters/{letter['id']}/replay", json={"reason": "too early"})
    assert still.status_code == 200 and still.json()["outcome"] == "still-invalid"

    fixed = copy.deepcopy(schema)  # the fix: the contract learns the optional carrier
    fixed["properties"]["carrier"] = {"type": "string", "maxLength": 40}
    fixed["$id"] = fixed["$id"].replace("1.0.0", "1.1.0")
    added = admin.post("/registry/contracts/events.return-received/versions", params={"version": "1.1.0"},
                       json=fixed)
    assert added.status_code == 201, added.text
    assert admin.post("/registry/contracts/events.return-received/versions/1.1.0/publish").status_code == 200
    replayed = admin.post(f"{base}/dead-letters/replay", json={"reason": "contract 1.1.0 published"})
    assert replayed.status_code == 200, replayed.text
    assert [r["outcome"] for r in replayed.json()["replayed"]] == ["appended"]
    [delivered] = events.read("returns", path=RETURNS)["events"]
    assert delivered["event"]["id"] == "rma-1" and delivered["event"]["data"]["carrier"] == "dhl"
    assert admin.get(f"{base}/dead-letters/{letter['id']}").status_code == 404
    audit = admin.get("/registry/audit", params={"action": "events.dead-letter-replayed"}).json()
    assert audit[-1]["actor"] == "admin" and audit[-1]["reason"] == "too early"
    audit = admin.get("/registry/audit", params={"action": "events.dead-letters-replayed"}).json()
    assert audit[-1]["after"]["counts"] == {"appended": 1}
    assert admin.get("/registry/audit/verify").json()["ok"] is True


def test_an_admin_rewinds_a_group_to_a_time(events: Events) -> None:
    events.join("resync")
    since = datetime.now(UTC)
    time.sleep(0.01)
    body = json.dumps([adjustment(f"resync-{n}", "RESYNC") for n in range(3)])
    events.producer.post(INVENTORY, content=body, headers={"content-type": "application/cloudevents-batch+json"})
    first = events.read("resync")["events"]
    events.consumer.post(INVENTORY + "/ack", json={"group": "resync", "ids": [e["streamId"] for e in first]})
    assert len(first) == 3 and events.read("resync")["events"] == []
    groups = events.gateway.admin.get("/registry/events/events.inventory-adjusted/v1/groups").json()
    assert "erp-sync:resync" in {g["name"] for g in groups}
    rewound = events.gateway.admin.post("/registry/events/events.inventory-adjusted/v1/groups/erp-sync:resync/replay",
                                        json={"from": since.isoformat(), "reason": "ERP restored from backup"})
    assert rewound.status_code == 200, rewound.text
    assert rewound.json()["mode"] == "rewind" and "queued" not in rewound.json()
    assert [e["streamId"] for e in events.read("resync")["events"]] == [e["streamId"] for e in first]
    audit = events.gateway.admin.get("/registry/audit", params={"action": "events.group-rewound"}).json()
    assert audit[-1]["target"].endswith("/groups/erp-sync:resync")
    assert audit[-1]["after"]["lastDeliveredId"] == rewound.json()["lastDeliveredId"]


def publish_slice(events: Events, name: str, count: int) -> list[dict[str, Any]]:
    """A batch of adjustments, then a pause, so that times taken before and after it bound it."""
    time.sleep(0.01)
    body = json.dumps([adjustment(f"{name}-{n}", name.upper()) for n in range(count)])
    response = events.producer.post(INVENTORY, content=body,
                                    headers={"content-type": "application/cloudevents-batch+json"})
    assert response.status_code == 202, response.text
    time.sleep(0.01)
    return response.json()["receipts"]


def test_an_admin_replays_a_time_range_of_the_stream_to_one_group(events: Events) -> None:
    admin, base = events.gateway.admin, "/registry/events/events.inventory-adjusted/v1"
    events.join("range")
    events.join("range-other")
    publish_slice(events, "range-before", 2)
    since = datetime.now(UTC)
    middle = publish_slice(events, "range-middle", 3)
    until = datetime.now(UTC)
    publish_slice(events, "range-after", 2)
    for group in ("range", "range-other"):
        read = events.read(group)["events"]
        assert len(read) == 7
        events.consumer.post(INVENTORY + "/ack", json={"group": group, "ids": [e["streamId"] for e in read]})

    window = {"from": since.isoformat(), "to": until.isoformat()}
    refused = admin.post(f"{base}/groups/erp-sync:range/replay", json={**window, "limit": 2})
    assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"].endswith("/range-too-large") and "more than 2 entries" in refused.json()["detail"]
    assert events.read("range")["events"] == []  # nothing was queued

    replayed = admin.post(f"{base}/groups/erp-sync:range/replay",
                          json={**window, "limit": 3, "reason": "ERP restored from backup"})
    assert replayed.status_code == 200, replayed.text
    assert replayed.json() == {"group": "erp-sync:range", "mode": "range", "queued": 3,
                               "firstId": middle[0]["streamId"], "lastId": middle[-1]["streamId"]}
    queued = {g["name"]: g["replayQueued"] for g in admin.get(f"{base}/groups").json()}
    assert (queued["erp-sync:range"], queued["erp-sync:range-other"]) == (3, 0)

    got = events.read("range")["events"]
    assert [e["replayOf"] for e in got] == [r["streamId"] for r in middle]
    assert [(e["event"]["id"], e["event"]["govgatesequence"]) for e in got] == [(r["id"], r["sequence"])
                                                                                for r in middle]
    assert all(e["streamId"].startswith("replay:") and e["deliveryCount"] == 1 for e in got)
    assert events.read("range-other")["events"] == []
    acked = events.consumer.post(INVENTORY + "/ack", json={"group": "range", "ids": [e["streamId"] for e in got]})
    assert acked.json() == {"group": "range", "acknowledged": 3}
    assert events.read("range")["events"] == []
    assert not events.redis.exists(events.stream() + ":rp:erp-sync:range")

    [audit] = admin.get("/registry/audit", params={"action": "events.group-range-replayed"}).json()[-1:]
    assert audit["target"].endswith("/groups/erp-sync:range") and audit["reason"] == "ERP restored from backup"
    assert audit["after"] == {**window, "limit": 3, "queued": 3, "firstId": middle[0]["streamId"],
                              "lastId": middle[-1]["streamId"]}
    assert admin.get("/registry/audit/verify").json()["ok"] is True


def test_a_bad_group_replay_is_refused_with_a_problem_never_a_500(events: Events) -> None:
    admin, base = events.gateway.admin, "/registry/events/events.inventory-adjusted/v1"
    events.join("range-bad")
    url = f"{base}/groups/erp-sync:range-bad/replay"
    since, until = "2025-11-28T06:00:00Z", "2025-11-28T07:00:00Z"
    for body, status in [
        ({"from": until, "to": since}, 400),  # to before from
        ({"from": "2025-11-28T06:00:00", "to": until}, 400),  # no time zone
        ({"from": since, "to": "2025-11-28T07:00:00"}, 400),
        ({"from": since, "to": until, "limit": 0}, 400),
        ({"from": since, "to": until, "limit": 10_001}, 400),
        ({"from": since, "to": until, "limit": "many"}, 400),
        ({"from": since, "limit": 10}, 400),  # a limit without `to`: a rewind has none
        ({"from": "yesterday", "to": until}, 400),
        ({"to": until}, 400),
        ({"from": since, "to": until, "until": until}, 400),
    ]:
        response = admin.post(url, json=body)
        assert response.status_code == status, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json", body
    unknown = admin.post(f"{base}/groups/erp-sync:nobody/replay", json={"from": since, "to": until})
    assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"
    assert events.gateway.reviewers[0].post(url, json={"from": since, "to": until}).status_code == 403
    ancient = admin.post(url, json={"from": "0001-01-01T00:00:00+14:00", "to": "0001-01-01T00:00:00+14:00"})
    assert ancient.status_code == 200 and ancient.json()["queued"] == 0, ancient.text
    for ids in (["replay:99999999999999999999-0"], ["replay:1-x"], ["replay-1-0"]):
        response = events.consumer.post(INVENTORY + "/ack", json={"group": "range-bad", "ids": ids})
        assert response.status_code == 400 and response.headers["content-type"] == "application/problem+json", ids
    huge = "99999999999999999999-0"  # 20 digits pass the path pattern; Redis refuses parts past 2^64 - 1
    for response in (admin.get(f"{base}/dead-letters/{huge}"), admin.post(f"{base}/dead-letters/{huge}/replay"),
                     admin.get(f"{base}/dead-letters", params={"after": huge})):
        assert response.status_code == 400 and "below 2^64" in response.json()["detail"], response.text


def test_publishing_and_reading_need_a_subscription_and_the_right_scope(events: Events) -> None:
    gateway = events.gateway
    body, headers = json.dumps(adjustment("auth-1")), STRUCTURED
    assert httpx.post(gateway.url + INVENTORY, content=body, headers=headers).status_code == 401
    assert events.consumer.post(INVENTORY, content=body, headers=headers).json()["type"].endswith("insufficient-scope")
    assert events.producer.get(INVENTORY, params={"group": "g"}).status_code == 403
    stranger = {"Authorization": f"Bearer {gateway.gateway_token('channel-test', ['events:publish'])}", **headers}
    assert httpx.post(gateway.url + INVENTORY, content=body, headers=stranger).json()["type"].endswith("not-subscribed")
    assert events.producer.post("/events/events.unknown/v1", content=body, headers=headers).status_code == 404
    assert events.producer.post(INVENTORY.replace("/v1", "/v2"), content=body, headers=headers).status_code == 404
    assert events.producer.delete(INVENTORY).status_code == 405
    assert events.consumer.get(INVENTORY, params={"group": "bad group!"}).status_code == 400
    assert events.consumer.post(INVENTORY + "/ack", json={"ids": ["x"]}).status_code == 400


def test_producers_and_consumers_show_in_usage_and_metrics(events: Events) -> None:
    """Who publishes and who reads a stream is recorded, for the consumers a contract change affects."""
    events.producer.post(INVENTORY, content=json.dumps(adjustment("usage-1", "USAGE")), headers=STRUCTURED)
    events.read("usage")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        usage = {(u["consumer"], u["operation"]) for u in events.gateway.admin.get(
            "/registry/contracts/events.inventory-adjusted/usage").json()}
        if {("channel-wms", "publish"), ("erp-sync", "consume")} <= usage:
            break
        time.sleep(0.1)
    assert {("channel-wms", "publish"), ("erp-sync", "consume")} <= usage
    metrics = httpx.get(events.gateway.url + "/metrics").text
    assert 'govgate_requests_total{consumer="channel-wms",contract="events.inventory-adjusted"' in metrics
    assert 'govgate_events_total{contract="events.inventory-adjusted",major="1",outcome="appended"}' in metrics


def test_the_asyncapi_document_describes_the_channel(events: Events) -> None:
    document = events.producer.get(INVENTORY + "/asyncapi.json").json()
    assert document["asyncapi"] == "3.0.0"
    assert document["channels"]["events"]["address"] == INVENTORY
    assert document["servers"]["govgate"]["host"] == events.gateway.url.split("://")[1]
    assert document["operations"]["publish"]["security"][0]["scopes"] == ["events:publish"]


def test_redis_down_answers_503_never_202(events: Events) -> None:
    with another_gateway(events, redis_url=f"redis://127.0.0.1:{free_port()}/0") as (_, url):
        response = httpx.post(url + INVENTORY, content=json.dumps(adjustment("down-1")), timeout=10,
                              headers={**STRUCTURED, "Authorization": f"Bearer {events.producer_token}"})
        assert response.status_code == 503, response.text
        assert response.json()["type"].endswith("/events-unavailable") and response.headers["Retry-After"] == "1"


def test_the_memory_backend_cannot_store_events(gateway: GatewayProcess) -> None:
    response = gateway.client.post(INVENTORY, content=json.dumps(adjustment("mem-1")), headers=STRUCTURED)
    assert response.status_code == 503
    assert response.json()["type"].endswith("/events-need-redis") and response.json()["correlationId"]


def test_the_demo_consumer_applies_inventory_adjustments_to_the_erp(events: Events) -> None:
    """The WMS publishes; the demo consumer process reads its group and changes the sample ERP's stock."""
    events.join("demo-erp")  # start the demo's group at the end of the stream
    port = free_port()
    erp = spawn(["-m", "gateway.demo.erp_stock", "--port", str(port)])
    consumer = None
    try:
        erp_url = f"http://127.0.0.1:{port}"
        wait_http(erp_url + "/healthz", process=erp)
        consumer = subprocess.Popen(
            [sys.executable, "-m", "gateway.demo.inventory_consumer", "--gateway", events.gateway.url, "--erp",
             erp_url, "--group", "demo-erp", "--interval", "0.1"], cwd=ROOT, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(ROOT), "GOVGATE_TOKEN": events.consumer_token})
        event = adjustment("demo-1", "MUG-WHT-350", location="BE-02-04", delta=120, reason="goods-receipt",
                           onHandAfter=310)
        assert events.producer.post(INVENTORY, content=json.dumps(event), headers=STRUCTURED).status_code == 202
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            applied = httpx.get(erp_url + "/_admin/stock-adjustments").json()
            if applied:
                break
            time.sleep(0.1)
        assert [(a["sku"], a["delta"], a["onHandAfter"]) for a in applied] == [("MUG-WHT-350", 120, 310)]
        position = httpx.get(erp_url + "/positions", params={"sku": "MUG-WHT-350", "location": "BE-02-04"}).json()
        assert position["items"][0]["onHand"] == 310
        time.sleep(0.6)  # past the visibility timeout: acknowledged, so nothing comes again
        assert events.read("demo-erp", consumer="check")["events"] == []
    finally:
        if consumer is not None:
            stop(consumer)
        stop(erp)


def test_the_group_replay_endpoint_keeps_its_contract_on_redis(events: Events) -> None:
    """schemathesis on the operators' group endpoints of a real stream and group (the registry's contract test
    runs on the memory backend, where they can only answer 503): no 5xx, answers as documented."""
    from tests.e2e.test_contract_tests import exercise

    events.join("fuzz")
    document = events.gateway.admin.get("/registry/openapi.json").json()
    paths = {path: operations for path, operations in document["paths"].items()
             if path.startswith("/registry/events/{contract}/{version}/groups")}
    real = {"contract": "events.inventory-adjusted", "version": "v1", "group": "erp-sync:fuzz"}
    for operations in paths.values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                parameter["schema"] = {"type": "string", "enum": [real[parameter["name"]]]}
    failures = exercise({**document, "paths": paths}, events.gateway.url,
                        {"Authorization": events.gateway.admin.headers["authorization"]})
    assert not failures, "\n\n".join(f"{op}:\n" + "\n".join(f[:3]) for op, f in failures.items())
