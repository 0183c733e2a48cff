"""What the shared page reads back from Redis is hostile: each decoder takes what a process of the
page writes, and refuses (None) anything else, whatever its shape, size or type."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pyramid_deferred.dashboard.recorder import NameSample, RunView, TaskView
from pyramid_deferred.dashboard.wire import (
    MAX_RUN_BYTES,
    PUBLISHED_SAMPLES,
    WorkerId,
    WorkerMeta,
    decode_meta,
    decode_name,
    decode_run,
    decode_worker_id,
    encode_meta,
    encode_name,
    encode_run,
)

PREFIX = b"name:"
RUN = RunView(
    number=7, pid=4242, request_id="rid-1", request="POST /api/cart/items", status=201, trigger="close",
    finished_at=1.8e9, wait_seconds=0.001, elapsed_seconds=0.25, budget_seconds=10.0, refused=0,
    tasks=(TaskView("meta.purchase", 100, 0.5, "executed", 0.001, 0.2, None),
           TaskView("crm.sync", 50, 0.5, "failed", 0.201, 0.05, "KeyError"),
           TaskView("too.costly", 10, 60.0, "skipped", 0.251, None, None)),
    host="web-1",
)


def forged(**changes: Any) -> bytes:
    data = json.loads(encode_run(RUN))
    for key, value in changes.items():
        if key.startswith("task_"):
            data["tasks"][0][key.removeprefix("task_")] = value
        else:
            data[key] = value
    return json.dumps(data).encode()


def test_a_run_comes_back_as_it_was_written():
    assert decode_run(encode_run(RUN)) == RUN


def test_an_exception_type_named_in_any_alphabet_comes_back():
    shown = decode_run(forged(task_error="Ошибка_2"))
    assert shown is not None and shown.tasks[0].error == "Ошибка_2"


def test_markup_is_text_and_control_characters_are_replaced():
    shown = decode_run(forged(request="GET /<script>alert(1)</script>\x1b[31m\n",
                              task_name="<img src=x onerror=alert(1)>"))
    assert shown is not None
    assert shown.request == "GET /<script>alert(1)</script>\ufffd[31m\ufffd", "text, one line"
    assert shown.tasks[0].name == "<img src=x onerror=alert(1)>", "shown with textContent, as is"


@pytest.mark.parametrize("raw", [
    None, "a str, not bytes", b"", b"not json", b"[]", b"null", b'"run"', b"{}",
    b"[" * 100_000 + b"]" * 100_000,  # deeper than the parser's recursion
    b'{"tasks": [' + b"0," * (MAX_RUN_BYTES // 2) + b"0]}",  # longer than an entry may be
    forged(pid=0), forged(pid=-1), forged(pid=10**9), forged(pid="4242"), forged(pid=True), forged(pid=1.5),
    forged(number=-1), forged(number=2**60),
    forged(request_id="rid 1"), forged(request_id="x" * 129), forged(request_id=""), forged(request_id=None),
    forged(request="x" * 201), forged(request=["GET /"]), forged(request=None),
    forged(status=99), forged(status=1000), forged(status="201"),
    forged(trigger="<b>close</b>"), forged(trigger=""),
    forged(finished_at=float("inf")), forged(finished_at=-1), forged(finished_at=4e10),
    forged(finished_at="now"),
    forged(wait_seconds=-0.1), forged(elapsed_seconds=None), forged(budget_seconds="10"),
    forged(refused=-1), forged(refused=None), forged(host="web 1"), forged(host="x" * 65), forged(host=7),
    forged(tasks_cut=-1), forged(tasks="none"), forged(tasks=[1, 2]), forged(tasks=[{}] * 501),
    forged(task_name=""), forged(task_name="x" * 201), forged(task_name=None), forged(task_name=["a"]),
    forged(task_outcome="pwned"), forged(task_outcome=None), forged(task_priority=2**40),
    forged(task_priority=None), forged(task_max_cost_seconds=-1), forged(task_start_seconds="0"),
    forged(task_duration_seconds=float("nan")), forged(task_error="<img>"), forged(task_error=42),
    json.dumps({k: v for k, v in json.loads(encode_run(RUN)).items() if k != "pid"}).encode(),
    b'{"number": NaN}',
], ids=lambda raw: repr(raw)[:60])
def test_a_forged_run_is_refused(raw):
    assert decode_run(raw) is None


def test_a_name_s_statistics_come_back_as_written():
    sample = NameSample("meta.purchase", {"executed": 3, "failed": 1}, (0.25, 0.5, 0.125), 0.5, 100)

    decoded = decode_name(PREFIX + b"meta.purchase", encode_name(sample), PREFIX)

    assert decoded is not None
    name, record = decoded
    assert name == "meta.purchase" and record.durations == (0.25, 0.5, 0.125)
    assert record.counts["executed"] == 3 and record.counts["failed"] == 1 and record.counts["skipped"] == 0
    assert record.declared_cost == 0.5 and record.priority == 100


def test_a_name_publishes_its_latest_samples_only():
    sample = NameSample("a", {"executed": 500}, tuple(float(i) for i in range(500)), 1.0, 50)
    record = json.loads(encode_name(sample))
    assert record["durations"] == [float(i) for i in range(500 - PUBLISHED_SAMPLES, 500)]


GOOD_NAME = {"counts": {"executed": 1}, "durations": [0.1], "declared_cost_seconds": 1.0, "priority": 50}


@pytest.mark.parametrize(("field", "value"), [
    (b"meta.purchase", GOOD_NAME),  # no prefix
    ("name:a", GOOD_NAME),  # not bytes
    (b"name:", GOOD_NAME),  # an empty name
    (b"name:" + b"x" * 201, GOOD_NAME),
    (b"name:\xff\xfe", GOOD_NAME),  # not UTF-8
    (b"name:a", {**GOOD_NAME, "counts": {"pwned": 1}}),
    (b"name:a", {**GOOD_NAME, "counts": {"executed": -1}}),
    (b"name:a", {**GOOD_NAME, "counts": {"executed": 1.5}}),
    (b"name:a", {**GOOD_NAME, "counts": []}),
    (b"name:a", {**GOOD_NAME, "durations": [0.1] * (PUBLISHED_SAMPLES + 1)}),
    (b"name:a", {**GOOD_NAME, "durations": [-1]}),
    (b"name:a", {**GOOD_NAME, "durations": ["0.1"]}),
    (b"name:a", {**GOOD_NAME, "durations": "0.1"}),
    (b"name:a", {**GOOD_NAME, "declared_cost_seconds": None}),
    (b"name:a", {**GOOD_NAME, "priority": "high"}),
    (b"name:a", [GOOD_NAME]),
], ids=lambda value: repr(value)[:40])
def test_forged_statistics_are_refused(field, value):
    assert decode_name(field, json.dumps(value).encode(), PREFIX) is None


def test_a_worker_s_counters_and_id():
    meta = WorkerMeta(started_at=1.8e9, total_runs=10, published=9, dropped=1, evicted_task_names=0)
    assert decode_meta(encode_meta(meta)) == meta
    assert decode_meta(b'{"started_at": 1, "total_runs": -1, "published": 0, "dropped": 0, '
                       b'"evicted_task_names": 0}') is None
    assert decode_meta(b"[]") is None and decode_meta(b"x" * 2000) is None

    worker = WorkerId("web-1.example", 4242, "0a1b2c3d")
    assert decode_worker_id(str(worker).encode()) == worker


@pytest.mark.parametrize("raw", [
    b"web-1:4242", b"web-1:0:0a1b2c3d", b"web-1:9999999:0a1b2c3d", b"web 1:4242:0a1b2c3d",
    b"<b>:4242:0a1b2c3d", b"web-1:4242:0A1B2C3D", b"web-1:4242:0a1b2c3d:x", "web-1:4242:0a1b2c3d",
    b"w\xc3\xa9b:4242:0a1b2c3d", b"x" * 65 + b":4242:0a1b2c3d", None,
])
def test_a_forged_worker_id_is_refused(raw):
    assert decode_worker_id(raw) is None
