"""Label benchmarks: render rate, bytes per label (full vs stored format), batch vs link limit.

Method: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import parse_args  # noqa: E402
from printers.driver import ZplPrinter  # noqa: E402
from printers.mock import PrinterSimulator  # noqa: E402
from printers.transport import link_seconds  # noqa: E402
from printers.zpl import LabelContent, get_template, render_batch, render_label  # noqa: E402

TINY = {"labels": 4, "baud": 115200, "render_seconds": 0.05}  # --tiny


def contents(n: int) -> list[LabelContent]:
    """Return n distinct, fully populated sample labels."""
    return [
        LabelContent(
            f"S26-{i:06d}-A",
            "PBMC",
            lot="LV-2026-0042",
            date="2026-11-29",
            coi_short="COI-26-000001-K",
        )
        for i in range(1, n + 1)
    ]


def render_rate(template_name: str, seconds: float = 1.0) -> float:
    """Measure full-label ZPL renders per second for one template."""
    template = get_template(template_name)
    items = contents(500)
    count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for c in items:
            render_label(c, template)
        count += len(items)
    return count / (time.perf_counter() - start)


def batch_run(template_name: str, n: int, baud: int, stored: bool) -> dict:
    """Send an n-label batch to a simulator throttled to baud; time it against the link."""
    template = get_template(template_name)
    batch = render_batch(contents(n), template, stored=stored)
    sim = PrinterSimulator(baud=baud).start()
    try:
        printer = ZplPrinter(sim.port, baud=baud, timeout=3.0)
        out = printer.print_batch(batch.format_bytes, batch.labels)
        printer.close()
        ok = out.ok and [lb.barcode for lb in sim.printed] == [c.barcode for c in contents(n)]
    finally:
        sim.stop()
    limit = link_seconds(out.bytes_sent, baud)
    return {
        "template": template_name,
        "labels": n,
        "baud": baud,
        "stored_format": stored,
        "bytes_on_wire": out.bytes_sent,
        "elapsed_s": round(out.elapsed_s, 3),
        "link_limit_s": round(limit, 3),
        "ratio": round(out.elapsed_s / limit, 3),
        "complete_in_order": ok,
        "error": out.error,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and print a table (or JSON)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baud", type=int, default=9600)
    ap.add_argument("--labels", type=int, default=96)
    ap.add_argument("--template", default="cryovial-203")
    ap.add_argument("--full", action="store_true", help="also time the batch as full labels")
    ap.add_argument("--render-seconds", type=float, default=1.0, help="per template")
    ap.add_argument("--json", action="store_true")
    args = parse_args(ap, TINY, argv)

    rates = {
        name: round(render_rate(name, args.render_seconds))
        for name in ("cryovial-203", "cryovial-300", "bag-300")
    }
    sizes = {}
    for name in ("cryovial-203", "cryovial-300", "tube-2ml-300", "box-203", "bag-300"):
        t = get_template(name)
        full = render_batch(contents(96), t, stored=False)
        stored = render_batch(contents(96), t, stored=True)
        sizes[name] = {
            "full_bytes_per_label": round(full.total_bytes / 96, 1),
            "stored_bytes_per_label": round(sum(len(b) for b in stored.labels) / 96, 1),
            "format_bytes": len(stored.format_bytes or b""),
            "batch96_full": full.total_bytes,
            "batch96_stored": stored.total_bytes,
            "saving": round(1 - stored.total_bytes / full.total_bytes, 3),
        }
    runs = [batch_run(args.template, args.labels, args.baud, stored=True)]
    if args.full:
        runs.append(batch_run(args.template, args.labels, args.baud, stored=False))

    if args.json:
        print(json.dumps({"render_per_s": rates, "bytes": sizes, "batches": runs}, indent=2))
        return 0 if all(r["complete_in_order"] for r in runs) else 1

    print("ZPL renders per second (full label)")
    for name, rate in rates.items():
        print(f"  {name:<14} {rate:>10,}/s")
    print("\nBytes per label (96-label batch)")
    print(
        f"  {'template':<14} {'full':>8} {'stored':>8} {'^DF':>6} {'batch full':>11} "
        f"{'batch stored':>13} {'saving':>7}"
    )
    for name, s in sizes.items():
        print(
            f"  {name:<14} {s['full_bytes_per_label']:>8} {s['stored_bytes_per_label']:>8} "
            f"{s['format_bytes']:>6} {s['batch96_full']:>11} {s['batch96_stored']:>13} "
            f"{s['saving']:>7.1%}"
        )
    print("\nBatch to the simulator (throttled), elapsed vs link limit bytes*10/baud")
    for r in runs:
        kind = "stored" if r["stored_format"] else "full"
        print(
            f"  {r['labels']} x {r['template']} ({kind}) at {r['baud']} baud: "
            f"{r['bytes_on_wire']} bytes, {r['elapsed_s']:.3f} s vs limit {r['link_limit_s']:.3f} s"
            f" -> ratio {r['ratio']:.3f} (target <= 1.1); complete and in order: "
            f"{r['complete_in_order']}" + (f" ({r['error']})" if r["error"] else "")
        )
    return 0 if all(r["complete_in_order"] for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
