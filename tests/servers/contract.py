"""What every real server must show; each test module runs these against its own server.

Classes here are not collected (no ``Test`` prefix); ``test_*.py`` modules subclass them and
provide a module-scoped ``server`` fixture. Every test waits for the side effects of its own
requests, so the next test finds the server idle.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from tests.servers.probe_app import (
    BODIES,
    DEFERRED_TASK_LOG,
    EDGE_BODY,
    EDGE_ETAG,
    ISOLATION_LOG,
    ISOLATION_TASKS,
    MARKERS,
)
from tests.servers.servers import RawResponse, RunningServer, fetch, poll

T = TypeVar("T")

TASK_SECONDS = 1.5
BODY_BOUND_SECONDS = 0.5  # the bound: the client has the body well before the 1.5 s task ends
MARKER_TIMEOUT = TASK_SECONDS + 8.0
EDGE_TASK_SECONDS = 1.0
"""The ``always`` task of an edge request sleeps this long: a client that waited for it shows."""
ISOLATION_REQUESTS = 200
ISOLATION_CLIENTS = 24
ISOLATION_HOLD = 0.002
"""Seconds of simulated view work between the two runner look-ups, so requests interleave."""
ISOLATION_TIMEOUT = 20.0


def read_marker(server: RunningServer, name: str) -> dict[str, Any] | None:
    path = server.probe_dir / MARKERS / f"{name}.json"
    if not path.exists():
        return None
    marker: dict[str, Any] = json.loads(path.read_text())
    return marker


def wait_for_marker(server: RunningServer, name: str, timeout: float = MARKER_TIMEOUT) -> dict[str, Any]:
    marker = poll(lambda: read_marker(server, name), timeout=timeout)
    assert marker is not None, f"the deferred task did not write marker {name!r} within {timeout}s"
    return marker


def read_task_log(server: RunningServer) -> str:
    path = server.probe_dir / DEFERRED_TASK_LOG
    return path.read_text(errors="replace") if path.exists() else ""


def wait_for_log(server: RunningServer, done: Callable[[str], bool], timeout: float = MARKER_TIMEOUT) -> str:
    """The DEFERRED_TASK log once ``done(text)`` holds (the runner logs just after a task returns)."""

    def text_if_done() -> str | None:
        text = read_task_log(server)
        return text if done(text) else None

    return poll(text_if_done, timeout=timeout) or read_task_log(server)


def read_isolation_lines(server: RunningServer) -> list[list[str]]:
    path = server.probe_dir / ISOLATION_LOG
    if not path.exists():
        return []
    return [line.split(" ", 4) for line in path.read_text().splitlines()]


def wait_for_isolation_lines(
    server: RunningServer, done: Callable[[list[list[str]]], bool], *, timeout: float = ISOLATION_TIMEOUT
) -> list[list[str]]:
    """The isolation log's lines, once ``done(lines)`` holds or ``timeout`` has passed."""

    def lines_if_done() -> list[list[str]] | None:
        lines = read_isolation_lines(server)
        return lines if done(lines) else None

    return poll(lines_if_done, timeout=timeout) or read_isolation_lines(server)


def isolation_problems(
    rids: list[str], lines: list[list[str]], expected: set[tuple[str, str]] | None = None
) -> list[str]:
    """Every expected (rid, task index) exactly once, each run at the end of its own request.

    ``expected`` defaults to every index of every rid; lines of other rids are ignored.
    """
    if expected is None:
        expected = {(rid, str(index)) for rid in rids for index in range(ISOLATION_TASKS)}
    problems = [f"malformed line {line}" for line in lines if len(line) != 5]
    lines = [line for line in lines if len(line) == 5 and line[0] in rids]
    runs = Counter((own, index) for own, index, *_ in lines)
    problems += [f"task {pair} never ran" for pair in sorted(expected - runs.keys())]
    problems += [f"task {pair} ran {n} times" for pair, n in sorted(runs.items()) if n > 1]
    problems += [f"unexpected task {pair}" for pair in sorted(runs.keys() - expected)]
    problems += [
        f"task {own}/{index} ran at the end of request {seen!r} (pid {pid}, thread {thread})"
        for own, index, seen, pid, thread in lines
        if seen != own
    ]
    return problems


def has_leak(lines: list[list[str]]) -> bool:
    return any(len(line) == 5 and line[2] != line[0] for line in lines)


def fire_isolation_requests(server: RunningServer, rids: list[str]) -> list[RawResponse]:
    """All requests at once from ``ISOLATION_CLIENTS`` threads; each defers tasks tagged with its rid.

    Every other request streams its body (no Content-Length), so on servers that need it those
    batches go through the hand-off worker while the others run in ``close()``.
    """

    def one(numbered: tuple[int, str]) -> RawResponse:
        index, rid = numbered
        size = "&size=stream" if index % 2 else ""
        return fetch(server.port, f"/probe/isolation?rid={rid}&hold={ISOLATION_HOLD}{size}")

    with ThreadPoolExecutor(ISOLATION_CLIENTS) as pool:
        return list(pool.map(one, enumerate(rids), timeout=ISOLATION_TIMEOUT))


def report(problems: list[str], limit: int = 20) -> str:
    shown = "\n".join(problems[:limit])
    more = f"\n... and {len(problems) - limit} more" if len(problems) > limit else ""
    return f"{len(problems)} problem(s):\n{shown}{more}"


def in_waves(
    server: RunningServer, jobs: Sequence[Callable[[], T]], settle: Callable[[T], object]
) -> list[T]:
    """Run ``jobs`` (timed requests) at most ``concurrency`` at a time, settling each wave.

    ``settle(result)`` waits for a request's side effects, so no timed request ever queues behind
    an earlier request's task. A single sync worker first answers /health, i.e. is free.
    """
    results: list[T] = []
    size = max(1, server.spec.concurrency)
    for start in range(0, len(jobs), size):
        wave = jobs[start : start + size]
        if size == 1:
            assert fetch(server.port, "/health").status == 200
        with ThreadPoolExecutor(len(wave)) as pool:
            done = list(pool.map(lambda job: job(), wave))
        for result in done:
            settle(result)
        results.extend(done)
    return results


_GUNICORN = {
    "100B": "close", "1MiB": "close", "stream": "close", "stream-http10": "thread",
    "exception": "thread", "head": "close", "not-modified": "close", "partial": "close",
    "unsatisfiable": "thread",
}
_NOT_GUNICORN = {
    **_GUNICORN, "stream": "thread", "head": "thread", "not-modified": "thread",
}
EXPECTED_TRIGGERS: dict[str, dict[str, str]] = {
    "gunicorn": _GUNICORN,
    "waitress": _NOT_GUNICORN,
    "wsgiref": _NOT_GUNICORN,
    "uwsgi": dict.fromkeys(_GUNICORN, "uwsgi"),
}
"""Per server family and response: what runs the batch under the default strategy (auto).
docs/servers.md's server-support table is this table."""


@dataclass(frozen=True)
class BodyKind:
    size: str
    protocol: str = "HTTP/1.1"


BODY_KINDS = {
    "100B": BodyKind("small"),
    "1MiB": BodyKind("large"),
    "stream": BodyKind("stream"),
    "stream-http10": BodyKind("stream", "HTTP/1.0"),
}


@dataclass
class Delivery:
    response: RawResponse
    marker: dict[str, Any]


def deliver_bodies(server: RunningServer) -> dict[str, Delivery]:
    """One request per body kind (concurrently where the server can), each deferring a 1.5 s task."""

    def job(label: str) -> Callable[[], tuple[str, RawResponse]]:
        kind = BODY_KINDS[label]
        path = f"/probe/sleep?rid=body-{label}&seconds={TASK_SECONDS}&size={kind.size}"
        return lambda: (label, fetch(server.port, path, protocol=kind.protocol))

    markers: dict[str, dict[str, Any]] = {}

    def settle(result: tuple[str, RawResponse]) -> None:
        markers[result[0]] = wait_for_marker(server, f"body-{result[0]}")

    done = in_waves(server, [job(label) for label in BODY_KINDS], settle)
    return {label: Delivery(response, markers[label]) for label, response in done}


def assert_trigger(server: RunningServer, label: str, task_prefix: str) -> None:
    expected = EXPECTED_TRIGGERS[server.spec.family][label]
    line = f"via {expected}: {task_prefix}"
    log = wait_for_log(server, lambda text: task_prefix in text and "Running" in text)
    assert line in log, f"expected the batch to run via {expected}; the log says:\n" + "\n".join(
        entry for entry in log.splitlines() if task_prefix in entry and "Running" in entry
    )


class ResponseBeforeTasks:
    """The client has the whole body before the request's deferred task runs; then it runs.

    Bodies: 100 B and 1 MiB with Content-Length, and a generator without Content-Length (sent
    chunked, or framed by closing the connection); the last one also over HTTP/1.0, as nginx
    speaks to its upstreams by default, where no server can chunk.
    """

    @pytest.mark.parametrize("label", list(BODY_KINDS))
    def test_client_has_the_body_before_the_deferred_task_runs(
        self, deliveries: dict[str, Delivery], label: str
    ) -> None:
        response, marker = deliveries[label].response, deliveries[label].marker
        body = BODIES[BODY_KINDS[label].size]

        assert response.status == 200
        assert response.body == body
        if BODY_KINDS[label].size != "stream":
            assert response.framing == "length"
        else:
            assert response.framing in ("chunked", "close")
        assert response.seconds_to_body < BODY_BOUND_SECONDS, (
            f"the client waited {response.seconds_to_body:.3f}s for the {response.framing}-framed "
            "body: the deferred task ran before the response was complete"
        )
        assert marker["finished"] > response.complete_at
        assert marker["finished"] - marker["started"] >= TASK_SECONDS
        assert marker["seen_rid"] == f"body-{label}", "the task ran in another request's context"

    @pytest.mark.parametrize("label", list(BODY_KINDS))
    def test_each_body_kind_runs_its_batch_via_the_servers_trigger(
        self, server: RunningServer, deliveries: dict[str, Delivery], label: str
    ) -> None:
        assert_trigger(server, label, f"probe.sleep.body-{label}")


@dataclass(frozen=True)
class EdgeCase:
    """A response WebOb or the server shapes on its own, and what must happen to its tasks."""

    status: int
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    raises: bool = False
    body: bytes = EDGE_BODY

    @property
    def failed(self) -> bool:
        """Failed requests discard their plain task (logged) and run only the ``always`` one."""
        return self.status >= 400


EDGE_CASES = {
    "exception": EdgeCase(500, raises=True),
    "head": EdgeCase(200, method="HEAD", body=b""),
    "not-modified": EdgeCase(304, headers={"If-None-Match": f'"{EDGE_ETAG}"'}, body=b""),
    "partial": EdgeCase(206, headers={"Range": "bytes=0-9"}, body=EDGE_BODY[:10]),
    "unsatisfiable": EdgeCase(
        416, headers={"Range": "bytes=5000-6000"}, body=b"Requested range not satisfiable: bytes=5000-6000"
    ),
}


def fire_edge_requests(server: RunningServer) -> dict[str, RawResponse]:
    """One request per edge case, each followed by a plain request once its tasks ran."""

    def job(label: str) -> Callable[[], tuple[str, RawResponse]]:
        case = EDGE_CASES[label]
        path = f"/probe/edge?rid=edge-{label}&seconds={EDGE_TASK_SECONDS}"
        path += "&raise=1" if case.raises else ""
        return lambda: (label, fetch(server.port, path, method=case.method, headers=case.headers))

    def settle(result: tuple[str, RawResponse]) -> None:
        rid = f"edge-{result[0]}"
        wait_for_isolation_lines(
            server, lambda lines: any(line[:2] == [rid, "1"] for line in lines), timeout=MARKER_TIMEOUT
        )
        # The next request on this server: its own tasks must be the only ones it runs.
        assert fetch(server.port, f"/probe/isolation?rid=next-{rid}").status == 200

    return dict(in_waves(server, [job(label) for label in EDGE_CASES], settle))


class EdgeResponses:
    """Exceptions escaping Pyramid, HEAD, 304, 206 and 416 on the real server: the client never
    waits for the tasks, and each task runs (or is discarded and logged) exactly once, at the end
    of its own request, never carried into the next one."""

    @pytest.mark.parametrize("label", list(EDGE_CASES))
    def test_client_gets_the_response_without_waiting_for_the_tasks(
        self, server: RunningServer, edge_responses: dict[str, RawResponse], label: str
    ) -> None:
        response, case = edge_responses[label], EDGE_CASES[label]

        assert response.status == (server.spec.error_status if case.raises else case.status)
        if not case.raises:
            assert response.body == case.body
        assert response.seconds_to_body < BODY_BOUND_SECONDS, (
            f"the client waited {response.seconds_to_body:.3f}s for a {case.status} response "
            f"({response.framing}-framed): it waited for the deferred tasks"
        )

    @pytest.mark.parametrize("label", list(EDGE_CASES))
    def test_each_task_runs_or_is_logged_exactly_once_in_its_own_request(
        self, server: RunningServer, edge_responses: dict[str, RawResponse], label: str
    ) -> None:
        case, rid = EDGE_CASES[label], f"edge-{label}"
        expected = {(rid, "1")} if case.failed else {(rid, "0"), (rid, "1")}
        rids = [rid, f"next-{rid}"]
        expected |= {(f"next-{rid}", str(index)) for index in range(ISOLATION_TASKS)}

        lines = wait_for_isolation_lines(
            server, lambda found: len([x for x in found if x[0] in rids]) >= len(expected)
        )

        assert not (problems := isolation_problems(rids, lines, expected)), report(problems)
        always = f"Ran deferred task probe.edge.{rid}.always "
        plain = f"{'Discarded' if case.failed else 'Ran'} deferred task probe.edge.{rid}.plain "
        log = wait_for_log(server, lambda text: always in text and plain in text)
        assert (log.count(always), log.count(plain)) == (1, 1), log

    @pytest.mark.parametrize("label", list(EDGE_CASES))
    def test_each_edge_response_runs_its_batch_via_the_servers_trigger(
        self, server: RunningServer, edge_responses: dict[str, RawResponse], label: str
    ) -> None:
        assert_trigger(server, label, f"probe.edge.edge-{label}.")


class Isolation:
    """Concurrent requests on a threaded server: no task runs twice, or at another request's end."""

    def test_each_task_runs_once_at_the_end_of_its_own_request(self, server: RunningServer) -> None:
        rids = [f"r{n:03d}" for n in range(ISOLATION_REQUESTS)]
        expected_lines = ISOLATION_REQUESTS * ISOLATION_TASKS

        responses = fire_isolation_requests(server, rids)

        assert [(r.status, r.body.decode()) for r in responses] == [(200, rid) for rid in rids]
        lines = wait_for_isolation_lines(
            server, lambda found: len([x for x in found if x[0] in rids]) >= expected_lines
        )
        assert not (problems := isolation_problems(rids, lines)), report(problems)
        assert len({thread for own, *_, thread in lines if own in rids}) > 1, (
            "the requests were not served concurrently"
        )

        # The same worker process is still there and still runs deferred tasks.
        pid = json.loads(fetch(server.port, "/probe/pid").body)["pid"]
        assert {line[3] for line in lines if line[0] in rids} == {str(pid)}
        assert fetch(server.port, "/probe/isolation?rid=after").status == 200
        rids.append("after")
        lines = wait_for_isolation_lines(
            server, lambda found: len([x for x in found if x[0] in rids]) >= expected_lines + ISOLATION_TASKS
        )
        assert not (problems := isolation_problems(rids, lines)), report(problems)
