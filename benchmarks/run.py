"""``make bench``: every benchmark of issues 6, 13 and 20 in one bounded run, then the report.

``python -m benchmarks`` (full: ~10 minutes on 2 cores) or ``python -m benchmarks --quick``
(small counts, ~2 minutes, written under ``benchmarks/results/quick/`` so the committed
results stay untouched). ``--report-only`` re-renders ``BENCHMARKS.md`` and the chart from
the saved JSON.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from benchmarks import budget, latency, load, machine, observability, overhead, peers, report, spill
from benchmarks.servers import ROOT

RESULTS = ROOT / "benchmarks" / "results"
SECTIONS = ("overhead", "peers", "budget", "latency", "load", "observability", "spill")

PROFILES: dict[str, dict[str, Any]] = {
    "full": {
        "latency": {"requests": 200, "warmup": 3, "time_limit": 420.0},
        "overhead": {"samples": 9, "tasks_per_sample": 20_000, "hook_requests": 2_000},
        "peers": {"rounds": 21, "sample_seconds": 0.06, "time_limit": 90.0},
        "budget": {"trials": 15, "learned_requests": 2_000},
        "load": {
            "work_requests": 40, "plain_requests": 20_000, "plain_seconds": 5.0, "lane_idle_requests": 10,
        },
        "observability": {"samples": 61, "requests": 300},
        "spill": {"requests": 2000, "spills": 2000, "outbox_requests": 1000},
    },
    "quick": {
        "latency": {"requests": 15, "warmup": 2, "time_limit": 60.0},
        "overhead": {"samples": 3, "tasks_per_sample": 5_000, "hook_requests": 300},
        "peers": {"rounds": 7, "sample_seconds": 0.01, "time_limit": 15.0},
        "budget": {"trials": 3, "learned_requests": 300},
        "load": {
            "work_requests": 12, "plain_requests": 3_000, "plain_seconds": 2.0, "lane_idle_requests": 3,
        },
        "observability": {"samples": 21, "requests": 100},
        "spill": {"requests": 200, "spills": 200, "outbox_requests": 150},
    },
}


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def outputs(quick: bool) -> tuple[Path, Path]:
    """(results directory, summary markdown): quick runs never overwrite the committed ones."""
    if quick:
        return RESULTS / "quick", RESULTS / "quick" / "BENCHMARKS.md"
    return RESULTS, ROOT / "BENCHMARKS.md"


def run(*, quick: bool, only: tuple[str, ...], note: str | None) -> tuple[dict[str, Any], bool]:
    profile = PROFILES["quick" if quick else "full"]
    out_dir, _ = outputs(quick)
    log_dir = out_dir / "logs"
    started = time.monotonic()
    results: dict[str, Any] = {
        "profile": "quick" if quick else "full",
        "command": "make bench" + (" BENCH_ARGS=--quick" if quick else ""),
        "machine": machine.describe(ROOT),
        "note": note,
        "load_average_before": machine.load_average(),
        "load_average_by_section": {},
    }
    jobs: dict[str, Callable[[], dict[str, Any]]] = {
        "overhead": lambda: overhead.measure(**profile["overhead"]),
        "peers": lambda: peers.measure(**profile["peers"]),
        "budget": lambda: budget.measure(**profile["budget"]),
        "latency": lambda: latency.measure(**profile["latency"], log_dir=log_dir),
        "load": lambda: load.measure(**profile["load"], log_dir=log_dir),
        "observability": lambda: observability.measure(**profile["observability"]),
        "spill": lambda: spill.measure(**profile["spill"]),
    }
    ok = True
    for name in only:
        print(f"[bench] {name} ...", flush=True)
        results["load_average_by_section"][name] = machine.load_average()
        section_started = time.monotonic()
        try:
            results[name] = jobs[name]()
        except Exception:
            ok = False
            results[name] = {"error": traceback.format_exc()}
            print(results[name]["error"], file=sys.stderr, flush=True)
        print(f"[bench] {name} done in {time.monotonic() - section_started:.0f}s", flush=True)
    results["load_average_after"] = machine.load_average()
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    return results, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts, results under results/quick/")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--report-only", action="store_true", help="re-render from the saved JSON")
    parser.add_argument("--note", help="a remark recorded with the results (e.g. 'machine shared')")
    args = parser.parse_args(argv)
    out_dir, summary = outputs(args.quick)
    raw = out_dir / "results.json"
    if args.report_only:
        results = json.loads(raw.read_text())
        if args.note:
            results["note"] = args.note
            raw.write_text(json.dumps(results, indent=1) + "\n")
        ok = True
    else:
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
        try:
            results, ok = run(quick=args.quick, only=tuple(args.only), note=args.note)
        except KeyboardInterrupt:
            print("[bench] interrupted: every server started was stopped; nothing written", file=sys.stderr)
            return 130
        out_dir.mkdir(parents=True, exist_ok=True)
        raw.write_text(json.dumps(results, indent=1) + "\n")
    report.write(results, raw_path=raw, summary_path=summary, chart_path=out_dir / "summary.png")
    written = f"{raw.relative_to(ROOT)}, {summary.relative_to(ROOT)}"
    print(f"[bench] wrote {written}; the run took {results['wall_seconds']:.0f}s", flush=True)
    return 0 if ok else 1
