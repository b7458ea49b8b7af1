"""The command line shared by the fuzz harnesses: atheris when installed, else Hypothesis."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any


def run_hypothesis(
    check: Callable[..., Any],
    strategies: tuple,
    *,
    seconds: float,
    examples: int,
    once: bool = False,
) -> tuple[int, float]:
    """Call check on Hypothesis examples in rounds of `examples` until `seconds` pass (or once).

    Returns (examples run, seconds taken). A broken invariant propagates as the exception.
    """
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    def case(values: tuple) -> None:  # Hypothesis wants None back; check may return a count
        check(*values)

    # A tiny run leaves nothing behind (no .hypothesis/ example database in the working dir).
    kept = {"database": None} if once else {}
    fuzz = settings(
        max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), **kept
    )(given(st.tuples(*strategies))(case))
    t0 = time.monotonic()
    rounds = 0
    while rounds == 0 or (not once and time.monotonic() - t0 < seconds):
        fuzz()
        rounds += 1
    return rounds * examples, time.monotonic() - t0


def main(
    description: str,
    run_atheris: Callable[[int, list[str]], int],
    check: Callable[..., Any],
    strategies: Callable[[], tuple],
    what: str,
) -> int:
    """Parse --seconds/--hypothesis/--tiny/--json and fuzz for a bounded time."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seconds", type=int, default=30, help="stop after this long")
    parser.add_argument("--hypothesis", action="store_true", help="use Hypothesis, not atheris")
    parser.add_argument(
        "--tiny", action="store_true", help="one round of 25 Hypothesis examples (a smoke run)"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args, rest = parser.parse_known_args()
    if not (args.hypothesis or args.tiny):
        try:
            import atheris  # noqa: F401
        except ImportError:
            print("atheris not installed: falling back to Hypothesis", file=sys.stderr)
        else:
            return run_atheris(args.seconds, rest)
    examples, seconds = run_hypothesis(
        check,
        strategies(),
        seconds=args.seconds,
        examples=25 if args.tiny else 500,
        once=args.tiny,
    )
    if args.json:
        print(json.dumps({"fuzzer": "hypothesis", "examples": examples, "seconds": seconds}))
    else:
        print(f"hypothesis fuzz: {examples} examples in {seconds:.1f}s, {what}")
    return 0
