"""What every real server must show; each test module runs these against its own server.

Classes here are not collected (no ``Test`` prefix); ``test_*.py`` modules subclass them and
provide a module-scoped ``server`` fixture.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.servers.probe_app import ISOLATION_LOG, ISOLATION_TASKS, LARGE_BODY, MARKERS, SMALL_BODY
from tests.servers.servers import RawResponse, RunningServer, fetch, poll

TASK_SECONDS = 1.5
BODY_BOUND_SECONDS = 0.75  # the bound: well under the task's 1.5 s
MARKER_TIMEOUT = TASK_SECONDS + 5.0
ISOLATION_REQUESTS = 200
ISOLATION_CLIENTS = 24
ISOLATION_HOLD = 0.002
"""Seconds of simulated view work between the two runner look-ups, so requests interleave."""
ISOLATION_TIMEOUT = 20.0


def read_marker(server: RunningServer, rid: str) -> dict[str, Any] | None:
    path = server.probe_dir / MARKERS / f"{rid}.json"
    if not path.exists():
        return None
    marker: dict[str, Any] = json.loads(path.read_text())
    return marker


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


def isolation_problems(rids: list[str], lines: list[list[str]]) -> list[str]:
    """Every (rid, task index) exactly once, each run at the end of its own request."""
    problems = [f"malformed line {line}" for line in lines if len(line) != 5]
    lines = [line for line in lines if len(line) == 5]
    runs = Counter((own, index) for own, index, *_ in lines)
    expected = {(rid, str(index)) for rid in rids for index in range(ISOLATION_TASKS)}
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
    """All requests at once from ``ISOLATION_CLIENTS`` threads; each defers tasks tagged with its rid."""

    def one(rid: str) -> RawResponse:
        return fetch(server.port, f"/probe/isolation?rid={rid}&hold={ISOLATION_HOLD}")

    with ThreadPoolExecutor(ISOLATION_CLIENTS) as pool:
        return list(pool.map(one, rids, timeout=ISOLATION_TIMEOUT))


def report(problems: list[str], limit: int = 20) -> str:
    shown = "\n".join(problems[:limit])
    more = f"\n... and {len(problems) - limit} more" if len(problems) > limit else ""
    return f"{len(problems)} problem(s):\n{shown}{more}"


class ResponseBeforeTasks:
    """The client has the whole body before the request's deferred task runs; then it runs."""

    @pytest.mark.parametrize(
        "size, body",
        [pytest.param("small", SMALL_BODY, id="100B"), pytest.param("large", LARGE_BODY, id="1MiB")],
    )
    def test_client_has_the_body_before_the_deferred_task_runs(
        self, server: RunningServer, size: str, body: bytes
    ) -> None:
        rid = f"{size}-body"
        # A sync worker still finishing an earlier test's task would delay this request;
        # it answers /health only once it is free again.
        assert fetch(server.port, "/health").status == 200

        response = fetch(server.port, f"/probe/sleep?rid={rid}&seconds={TASK_SECONDS}&size={size}")

        assert response.status == 200
        assert int(response.headers["content-length"]) == len(response.body) == len(body)
        assert response.body == body
        assert response.seconds_to_body < BODY_BOUND_SECONDS, (
            f"the client waited {response.seconds_to_body:.3f}s for the body: "
            "the deferred task ran before the response was sent"
        )
        marker = poll(lambda: read_marker(server, rid), timeout=MARKER_TIMEOUT)
        assert marker is not None, f"the deferred task did not write its marker within {MARKER_TIMEOUT}s"
        assert marker["finished"] > response.complete_at
        assert marker["finished"] - marker["started"] >= TASK_SECONDS
        assert marker["seen_rid"] == rid, "the task ran outside the close() of its own request"


class Isolation:
    """Concurrent requests on a threaded server: no task runs twice, or at another request's end."""

    def test_each_task_runs_once_at_the_end_of_its_own_request(self, server: RunningServer) -> None:
        rids = [f"r{n:03d}" for n in range(ISOLATION_REQUESTS)]
        expected_lines = ISOLATION_REQUESTS * ISOLATION_TASKS

        responses = fire_isolation_requests(server, rids)

        assert [(r.status, r.body.decode()) for r in responses] == [(200, rid) for rid in rids]
        lines = wait_for_isolation_lines(server, lambda found: len(found) >= expected_lines)
        assert not (problems := isolation_problems(rids, lines)), report(problems)
        assert len({thread for *_, thread in lines}) > 1, "the requests were not served concurrently"

        # The same worker process is still there and still runs deferred tasks.
        pid = json.loads(fetch(server.port, "/probe/pid").body)["pid"]
        assert {line[3] for line in lines} == {str(pid)}
        assert fetch(server.port, "/probe/isolation?rid=after").status == 200
        rids.append("after")
        lines = wait_for_isolation_lines(server, lambda found: len(found) >= expected_lines + ISOLATION_TASKS)
        assert not (problems := isolation_problems(rids, lines)), report(problems)
