"""The command line shared by the fuzz harnesses: atheris when installed, else Hypothesis."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable


def repeat_for(seconds: int, fuzz: Callable[[], None], batch: int, what: str) -> int:
    """Run a Hypothesis-decorated fuzz function until `seconds` pass; report the count."""
    deadline = time.monotonic() + seconds
    rounds = 0
    while time.monotonic() < deadline:
        fuzz()
        rounds += 1
    print(f"hypothesis fuzz: {rounds * batch} examples in {seconds}s, {what}")
    return 0


def main(
    description: str,
    run_atheris: Callable[[int, list[str]], int],
    run_hypothesis: Callable[[int], int],
) -> int:
    """Parse --seconds/--hypothesis and fuzz for a bounded time."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seconds", type=int, default=30, help="stop after this long")
    parser.add_argument("--hypothesis", action="store_true", help="use Hypothesis, not atheris")
    args, rest = parser.parse_known_args()
    if not args.hypothesis:
        try:
            import atheris  # noqa: F401
        except ImportError:
            print("atheris not installed: falling back to Hypothesis", file=sys.stderr)
        else:
            return run_atheris(args.seconds, rest)
    return run_hypothesis(args.seconds)
