"""The deferred work every bench app runs the same way: N sleeps, the last to end saying it is done.

A request asks for it with ``?tasks=5&ms=200&notify=<udp port>&id=<request id>``. The task that
ends last (the last one when they run one after the other; whichever ends last when they run side
by side) sends the id to the client's UDP port on 127.0.0.1, so the client knows when the request's
work is over without guessing with a fixed pause.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

BODY = b"The response body the client is timed on: a small page of exactly one hundred bytes.\n".ljust(
    100, b"."
)
CONTENT_TYPE = "text/plain"
TASK_COUNT = 5
TASK_SECONDS = 0.2
WORK_QUERY = f"tasks={TASK_COUNT}&ms={round(TASK_SECONDS * 1000)}"


def notify(port: int, request_id: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(request_id.encode("ascii"), ("127.0.0.1", port))


@dataclass(frozen=True, slots=True)
class Work:
    count: int = TASK_COUNT
    seconds: float = TASK_SECONDS
    notify_port: int | None = None
    request_id: str = ""

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> Work:
        port = params.get("notify")
        return cls(
            count=int(params.get("tasks", TASK_COUNT)),
            seconds=int(params.get("ms", round(TASK_SECONDS * 1000))) / 1000,
            notify_port=int(port) if port else None,
            request_id=params.get("id", ""),
        )

    def tasks(self) -> list[Callable[[], None]]:
        """One callable per task; the last of them to end notifies the client after its sleep."""
        seconds, port, request_id = self.seconds, self.notify_port, self.request_id
        left = [self.count]
        lock = threading.Lock()

        def sleep_task() -> None:
            time.sleep(seconds)
            with lock:
                left[0] -= 1
                last = left[0] == 0
            if last and port is not None:
                notify(port, request_id)

        return [sleep_task for _ in range(self.count)]

    def run_all(self) -> None:
        for task in self.tasks():
            task()
