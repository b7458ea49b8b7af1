"""Fuzz the scanner framer: whatever bytes arrive, in whatever reads, no exception escapes.

atheris when installed, else Hypothesis; --tiny: 25 Hypothesis examples. docs/benchmarks.md.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import _fuzz  # noqa: E402

SUFFIXES = ("CR", "LF", "CRLF", "TAB")


def check_stream(
    suffix: str, max_len: int, aim: bool | None, ops: list[tuple[bytes | None, float]]
) -> int:
    """Run one framer over (bytes or None for a poll, time step) ops; assert its invariants."""
    from scanners.framing import SUFFIXES as TERMS
    from scanners.framing import Framer, Scan

    framer = Framer(suffix, gap_s=0.05, max_len=max_len, aim=aim)
    term = TERMS[suffix]
    now = 0.0
    count = 0
    for data, step in ops:
        now += step
        scans = framer.poll(now) if data is None else framer.feed(data, now)
        for scan in scans:
            assert isinstance(scan, Scan)
            assert isinstance(scan.data, str)
            assert len(scan.raw) <= max_len, scan
            assert term not in scan.raw, scan
            assert scan.error is not None or scan.data, scan
            count += 1
        assert framer.pending <= max_len + len(term) - 1
    framer.flush()
    return count


def _ops_from_provider(fdp, n_ops: int) -> list[tuple[bytes | None, float]]:
    ops: list[tuple[bytes | None, float]] = []
    for _ in range(n_ops):
        if fdp.ConsumeIntInRange(0, 7) == 0:
            ops.append((None, fdp.ConsumeIntInRange(0, 100) / 1000))
        else:
            ops.append((fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 256)), 0.001))
    return ops


def run_atheris(seconds: int, libfuzzer_args: list[str]) -> int:
    """Fuzz with atheris for `seconds`."""
    import atheris

    with atheris.instrument_imports():
        import scanners.framing  # noqa: F401

    def test_one_input(data: bytes) -> None:
        fdp = atheris.FuzzedDataProvider(data)
        suffix = SUFFIXES[fdp.ConsumeIntInRange(0, 3)]
        max_len = fdp.ConsumeIntInRange(1, 600)
        aim = (None, True, False)[fdp.ConsumeIntInRange(0, 2)]
        check_stream(suffix, max_len, aim, _ops_from_provider(fdp, fdp.ConsumeIntInRange(1, 16)))

    argv = [sys.argv[0], f"-max_total_time={seconds}", "-print_final_stats=1", *libfuzzer_args]
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()  # exits the process
    return 0


def strategies() -> tuple:
    """Hypothesis strategies for check_stream's arguments."""
    from hypothesis import strategies as st

    op = st.tuples(st.one_of(st.none(), st.binary(max_size=256)), st.floats(0, 0.1))
    return (
        st.sampled_from(SUFFIXES),
        st.integers(1, 600),
        st.sampled_from([None, True, False]),
        st.lists(op, max_size=16),
    )


def main() -> int:
    """Parse arguments and fuzz for a bounded time."""
    return _fuzz.main(
        __doc__.splitlines()[0], run_atheris, check_stream, strategies, "no exception escaped"
    )


if __name__ == "__main__":
    raise SystemExit(main())
