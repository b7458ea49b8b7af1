"""Scans per second the scanner reader frames through a simulated pty, next to a bare read loop.

Rows and ratios: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._common import parse_args  # noqa: E402
from scanners.framing import Framer, Scan  # noqa: E402
from scanners.reader import ScannerReader  # noqa: E402
from scanners.sim import ScannerSimulator  # noqa: E402

TIMEOUT_S = 60.0
TINY = {"scans": 200, "repeat": 1, "latency_scans": 20}  # --tiny


def codes(n: int) -> list[str]:
    """Return n distinct sample barcodes."""
    return [f"S26-{i:06d}-K" for i in range(n)]


def stream_for(n: int) -> bytes:
    """Return the bytes a scanner sends for n scans with an AIM identifier and CR."""
    return b"".join(b"]C0" + c.encode() + b"\r" for c in codes(n))


def _writer(sim: ScannerSimulator, payload: bytes, chunk: int = 4096) -> threading.Thread:
    def run() -> None:
        for i in range(0, len(payload), chunk):
            sim.write(payload[i : i + chunk])

    thread = threading.Thread(target=run, daemon=True)
    return thread


def bench_raw_pty(n: int) -> float:
    """Return scans/s for bytes moved through a pty by a bare read loop."""
    payload = stream_for(n)
    with ScannerSimulator(write_timeout_s=TIMEOUT_S) as sim:
        fd = os.open(sim.port, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            writer = _writer(sim, payload)
            got = 0
            t0 = time.perf_counter()
            writer.start()
            deadline = time.monotonic() + TIMEOUT_S
            while got < len(payload):
                if time.monotonic() > deadline:
                    raise TimeoutError("raw pty read stalled")
                ready, _, _ = select.select([fd], [], [], 0.5)
                if ready:
                    got += len(os.read(fd, 65536))
            elapsed = time.perf_counter() - t0
            writer.join(TIMEOUT_S)
        finally:
            os.close(fd)
    return n / elapsed


def bench_reader(n: int) -> float:
    """Return scans/s framed by ScannerReader from a simulated scanner."""
    payload = stream_for(n)
    done = threading.Event()
    seen: list[Scan] = []

    def on_scan(scan: Scan) -> None:
        seen.append(scan)
        if len(seen) == n:
            done.set()

    with ScannerSimulator(write_timeout_s=TIMEOUT_S) as sim:
        reader = ScannerReader(sim.port, on_scan, name="bench").start()
        try:
            if not reader.wait_connected(5.0):
                raise TimeoutError("reader did not connect")
            writer = _writer(sim, payload)
            t0 = time.perf_counter()
            writer.start()
            if not done.wait(TIMEOUT_S):
                raise TimeoutError(f"only {len(seen)} of {n} scans arrived")
            elapsed = time.perf_counter() - t0
            writer.join(TIMEOUT_S)
        finally:
            reader.stop()
    if [s.data for s in seen] != codes(n):
        raise AssertionError("reader lost, duplicated or reordered scans")
    return n / elapsed


def bench_latency(n: int) -> dict[str, float]:
    """Return p50/p99/max ms from a scan's write to its on_scan, one scan at a time."""
    arrived = threading.Event()
    with ScannerSimulator(write_timeout_s=TIMEOUT_S) as sim:
        reader = ScannerReader(sim.port, lambda _scan: arrived.set(), name="latency").start()
        try:
            if not reader.wait_connected(5.0):
                raise TimeoutError("reader did not connect")
            samples = []
            for code in codes(n):
                arrived.clear()
                t0 = time.perf_counter()
                sim.scan(code, aim="]C0")
                if not arrived.wait(5.0):
                    raise TimeoutError("scan did not arrive")
                samples.append((time.perf_counter() - t0) * 1000)
        finally:
            reader.stop()
    samples.sort()
    return {
        "p50_ms": round(samples[len(samples) // 2], 3),
        "p99_ms": round(samples[int(len(samples) * 0.99)], 3),
        "max_ms": round(samples[-1], 3),
    }


def bench_framer(n: int, chunk: int | None) -> float:
    """Return scans/s for the pure framer fed `chunk`-byte reads (None: one read)."""
    payload = stream_for(n)
    framer = Framer("CR")
    t0 = time.perf_counter()
    count = 0
    if chunk is None:
        count = len(framer.feed(payload, 0.0))
    else:
        for i in range(0, len(payload), chunk):
            count += len(framer.feed(payload[i : i + chunk], 0.0))
    elapsed = time.perf_counter() - t0
    assert count == n
    return n / elapsed


def run(n: int, repeat: int, latency_scans: int = 200) -> dict[str, object]:
    """Run every measurement `repeat` times and keep the best of each."""
    scan_bytes = len(stream_for(1))
    rows = {
        "raw pty": max(bench_raw_pty(n) for _ in range(repeat)),
        "reader via pty": max(bench_reader(n) for _ in range(repeat)),
        "framer, 64 B reads": max(bench_framer(n, 64) for _ in range(repeat)),
        "framer, 1 read": max(bench_framer(n, None) for _ in range(repeat)),
        # 8N1: 10 bits on the wire per byte.
        "9600 baud line": 9600 / 10 / scan_bytes,
    }
    raw = rows["raw pty"]
    line = rows["9600 baud line"]
    return {
        "latency_one_scan": bench_latency(latency_scans),
        "scans": n,
        "repeat": repeat,
        "scan_bytes": scan_bytes,
        "python": sys.version.split()[0],
        "rows": [
            {
                "what": what,
                "scans_per_s": round(rate, 1),
                "ratio_to_raw_pty": round(rate / raw, 5),
                "ratio_to_9600_baud": round(rate / line, 1),
            }
            for what, rate in rows.items()
        ],
    }


def main() -> int:
    """Measure and print a table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency-scans", type=int, default=200, help="single scans timed")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parse_args(parser, TINY)
    result = run(args.scans, args.repeat, args.latency_scans)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"{result['scans']} scans of {result['scan_bytes']} bytes, best of {result['repeat']}, "
        f"Python {result['python']}"
    )
    lat = result["latency_one_scan"]
    print(
        f"latency scan->on_scan ({args.latency_scans} single scans): p50 {lat['p50_ms']} ms, "  # type: ignore[index]
        f"p99 {lat['p99_ms']} ms, max {lat['max_ms']} ms"  # type: ignore[index]
    )
    print(f"{'what':<22}{'scans/s':>14}{'x raw pty':>12}{'x 9600 baud':>14}")
    for row in result["rows"]:  # type: ignore[union-attr]
        print(
            f"{row['what']:<22}{row['scans_per_s']:>14,.0f}{row['ratio_to_raw_pty']:>12.4f}"
            f"{row['ratio_to_9600_baud']:>14,.0f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
