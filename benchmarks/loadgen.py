"""The load client for item 4, run as its own process so its threads never hold the probe's GIL.

``python -m benchmarks.loadgen --port P --path /bench/none --clients 16 --requests 20000
--seconds 5 [--notify]``. Each client is a thread with one keep-alive connection (reopened
when the server closes it) sending requests back to back; together they stop after
``--requests`` requests or ``--seconds``, whichever comes first. With ``--notify`` each
request's work reports its end over UDP, and the load generator waits (bounded) until all
the work it caused has run; each request's *batch* time is from its response's arrival to its
work's report (about how long the work kept a server thread busy after the response). Prints
``STARTED``, then ``LOADED`` when the last response has arrived, then one line of JSON.
"""

from __future__ import annotations

import argparse
import itertools
import json
import socket
import sys
import threading
import time
from typing import Any

from benchmarks.apps.work import WORK_QUERY
from benchmarks.client import Connection, ConnectionClosed, Reply
from benchmarks.stats import summarize_ms


def _listen(udp: socket.socket, received: dict[str, float], stop: threading.Event) -> None:
    udp.settimeout(0.1)
    while not stop.is_set():
        try:
            request_id = udp.recv(64).decode("ascii")
        except TimeoutError:
            continue
        received.setdefault(request_id, time.perf_counter())


def generate(
    *, port: int, path: str, clients: int, requests: int, seconds: float, notify: bool, drain_seconds: float
) -> dict[str, Any]:
    counter = itertools.count()
    latencies: list[float] = []
    finished: list[float] = []
    sent: list[str] = []
    responded: dict[str, float] = {}
    errors: list[str] = []
    received: dict[str, float] = {}
    stop_listening = threading.Event()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp_port = udp.getsockname()[1]
    listener = threading.Thread(target=_listen, args=(udp, received, stop_listening), daemon=True)
    listener.start()
    start = time.perf_counter()
    deadline = start + seconds

    def client() -> None:
        connection: Connection | None = None
        while (index := next(counter)) < requests and time.perf_counter() < deadline:
            request_path, request_id = path, str(index)
            if notify:
                sent.append(request_id)
                request_path += f"?{WORK_QUERY}&notify={udp_port}&id={request_id}"
            reply: Reply | None = None
            for attempt in (1, 2):  # a keep-alive connection the server closed: reopen once
                started = time.perf_counter()
                try:
                    connection = connection or Connection(port)
                    reply = connection.get(request_path, started=started)
                    break
                except (ConnectionClosed, OSError) as error:
                    if connection is not None:
                        connection.close()
                    connection = None
                    if attempt == 2:
                        errors.append(f"{type(error).__name__}: {error}")
            if reply is None:
                continue
            if reply.status != 200:
                errors.append(f"HTTP {reply.status}")
            latencies.append(reply.seconds)
            finished.append(time.perf_counter())
            if notify:
                responded[request_id] = finished[-1]
            if not reply.keep_alive and connection is not None:
                connection.close()
                connection = None
        if connection is not None:
            connection.close()

    print("STARTED", flush=True)
    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 60)
    last = max(finished, default=time.perf_counter())
    print("LOADED", flush=True)
    drained_after = None
    if notify:
        drain_deadline = time.perf_counter() + drain_seconds
        while not received.keys() >= set(sent) and time.perf_counter() < drain_deadline:
            time.sleep(0.02)
        if received.keys() >= set(sent):
            drained_after = time.perf_counter() - start
    stop_listening.set()
    listener.join(timeout=1)
    udp.close()
    elapsed = last - start
    return {
        "clients": clients,
        "completed": len(latencies),
        "errors": len(errors),
        "first_errors": errors[:5],
        "elapsed_seconds": round(elapsed, 3),
        "requests_per_second": round(len(latencies) / elapsed, 1) if elapsed > 0 else None,
        "latency_ms": summarize_ms(latencies),
        "work_requests": len(sent),
        "work_finished": len(received.keys() & set(sent)),
        "batch_ms": summarize_ms(
            [received[key] - responded[key] for key in responded if key in received]
        ),
        "work_drained_seconds": None if drained_after is None else round(drained_after, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--notify", action="store_true")
    parser.add_argument("--drain-seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    result = generate(
        port=args.port, path=args.path, clients=args.clients, requests=args.requests,
        seconds=args.seconds, notify=args.notify, drain_seconds=args.drain_seconds,
    )
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
