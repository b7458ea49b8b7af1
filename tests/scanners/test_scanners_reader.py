"""The scanner reader through a simulated scanner on a real pty, with real pyserial."""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from scanners.framing import Scan
from scanners.reader import PortEvent, ScannerGroup, ScannerReader
from scanners.sim import ScannerSimulator

pytestmark = pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs pseudo-terminals")

TIMEOUT = 5.0  # generous per wait: a failure must end the test, never hang it


class Collector:
    """Collect scans from a reader thread and wait for them with a deadline."""

    def __init__(self) -> None:
        self.queue: queue.Queue[Scan] = queue.Queue()
        self.scans: list[Scan] = []

    def __call__(self, scan: Scan) -> None:
        self.queue.put(scan)

    def take(self, n: int, timeout: float = TIMEOUT) -> list[Scan]:
        """Return the next n scans, failing the test if they do not arrive in time."""
        deadline = time.monotonic() + timeout
        got: list[Scan] = []
        while len(got) < n:
            left = deadline - time.monotonic()
            try:
                got.append(self.queue.get(timeout=max(left, 0.0)))
            except queue.Empty:
                pytest.fail(f"got {len(got)} of {n} scans within {timeout}s: {got[-3:]}")
        self.scans.extend(got)
        return got

    def assert_quiet(self, wait: float = 0.2) -> None:
        """Fail if any further scan arrives within `wait`."""
        try:
            extra = self.queue.get(timeout=wait)
        except queue.Empty:
            return
        pytest.fail(f"unexpected extra scan {extra!r}")


def wait_until(cond: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        time.sleep(0.005)


@pytest.fixture
def sim() -> Iterator[ScannerSimulator]:
    with ScannerSimulator(suffix="CR") as s:
        yield s


def start_reader(sim: ScannerSimulator, collector: Collector, **kw: object) -> ScannerReader:
    kw.setdefault("backoff_max_s", 0.2)
    reader = ScannerReader(sim.port, collector, suffix=kw.pop("suffix", "CR"), **kw)  # type: ignore[arg-type]
    reader.start()
    # pyserial flushes the input when it opens the port: scan only once it is open.
    assert reader.wait_connected(TIMEOUT)
    return reader


@pytest.fixture
def reader_factory() -> Iterator[Callable[..., ScannerReader]]:
    started: list[ScannerReader] = []

    def make(sim: ScannerSimulator, collector: Collector, **kw: object) -> ScannerReader:
        reader = start_reader(sim, collector, **kw)
        started.append(reader)
        return reader

    yield make
    for reader in started:
        assert reader.stop(timeout=3.0), "reader thread did not stop"
        assert not reader.running


@pytest.mark.parametrize("suffix", ["CR", "LF", "CRLF", "TAB"])
def test_every_framing_through_a_pty(
    suffix: str, reader_factory: Callable[..., ScannerReader]
) -> None:
    with ScannerSimulator(suffix=suffix, aim="]C0") as sim:
        got = Collector()
        reader = reader_factory(sim, got, suffix=suffix)
        sim.scan("S26-000123-K")
        sim.scan("0109506000134352" + "10LOT7\x1d17260630", aim="]C1")
        sim.scan("S26-000124-H", aim=None)
        scans = got.take(3)
        assert [(s.symbology, s.data) for s in scans] == [
            ("]C0", "S26-000123-K"),
            ("]C1", "010950600013435210LOT7\x1d17260630"),
            (None, "S26-000124-H"),
        ]
        assert all(s.ok and s.source == reader.name for s in scans)
        got.assert_quiet(0.1)
        assert reader.stats.scans == 3


def test_split_and_throttled_writes(sim: ScannerSimulator, reader_factory) -> None:
    got = Collector()
    reader_factory(sim, got)
    sim.scan("]d2 split in five", aim="]d2", split=5)
    sim.scan("cut at offsets", split=[1, 2, 7])
    # 9600 baud is ~960 chars/s: byte by byte at that pace, under the 50 ms gap.
    sim.scan("S26-000123-K", chars_per_s=960)
    assert [s.data for s in got.take(3)] == ["]d2 split in five", "cut at offsets", "S26-000123-K"]
    got.assert_quiet(0.1)


def test_noise_and_errors_through_a_pty(sim: ScannerSimulator, reader_factory) -> None:
    got = Collector()
    reader = reader_factory(sim, got, max_len=64)
    sim.noise(b"\x00\x00\r\x11\x13")
    sim.scan("ONE")
    sim.noise(b"\x00" * 10 + b"\r")
    sim.scan(b"A\xff\xfeB")
    sim.scan("X" * 10_000)
    sim.scan("TWO")
    scans = got.take(4)
    assert [(s.data, s.error) for s in scans] == [
        ("ONE", None),
        ("A\ufffd\ufffdB", "invalid UTF-8"),
        ("", "too long"),
        ("TWO", None),
    ]
    got.assert_quiet(0.1)
    assert (reader.stats.scans, reader.stats.errors) == (4, 2)


def test_line_noise_before_a_scan_is_dropped_and_the_scan_read(
    sim: ScannerSimulator, reader_factory, caplog
) -> None:
    got = Collector()
    reader = reader_factory(sim, got, gap_s=0.05)
    caplog.set_level("INFO", logger="scanners.reader")
    # NUL and 0xFF from a glitch, then the scan within the 50 ms gap: one read, one frame.
    sim.write(b"\x00\xff" + sim.frame("S26-000123-K"))
    (scan,) = got.take(1)
    assert (scan.data, scan.error) == ("S26-000123-K", None)
    # Noise alone (a plug-in glitch, nothing scanned): no scan, a log line and a count.
    sim.noise(b"\xff\xfe\x00")
    sim.scan("S26-000124-H")
    (scan,) = got.take(1)
    assert scan.data == "S26-000124-H" and scan.ok
    sim.noise(b"\x00\xff\xfe")
    wait_until(lambda: reader.stats.noise == 8)
    got.assert_quiet(0.15)
    lines = [r.getMessage() for r in caplog.records if "line noise" in r.getMessage()]
    assert lines and all("not a scan" in line for line in lines)
    assert "\\x00\\xff" in lines[0]
    assert (reader.stats.scans, reader.stats.errors) == (2, 0)


def test_gap_fallback_for_scanner_without_suffix(sim: ScannerSimulator, reader_factory) -> None:
    got = Collector()
    reader_factory(sim, got, gap_s=0.05)
    sim.scan("S26-000123-K", suffix="NONE", split=3)
    assert [s.data for s in got.take(1)] == ["S26-000123-K"]
    time.sleep(0.1)
    sim.scan("S26-000124-H", suffix="NONE")
    assert [s.data for s in got.take(1)] == ["S26-000124-H"]


def test_unplug_replug_mid_stream_recovers(sim: ScannerSimulator, reader_factory) -> None:
    got = Collector()
    reader = reader_factory(sim, got)
    sim.scan("BEFORE-1")
    sim.scan("BEFORE-2")
    assert [s.data for s in got.take(2)] == ["BEFORE-1", "BEFORE-2"]
    # The cable comes out half-way through a scan.
    sim.scan("HALF-A-SC", suffix="NONE")
    time.sleep(0.01)
    sim.unplug()
    wait_until(lambda: not reader.connected)
    assert reader.running
    time.sleep(0.15)  # a few failed reopen attempts while the device is absent
    sim.replug()
    assert reader.wait_connected(TIMEOUT)
    sim.scan("AFTER-1")
    sim.scan("AFTER-2", split=2)
    after = got.take(2)
    # The half scan may have been framed by the gap before the unplug, never glued to AFTER-1.
    datas = [s.data for s in after]
    assert datas in (["AFTER-1", "AFTER-2"], ["HALF-A-SC", "AFTER-1"])
    if datas[0] == "HALF-A-SC":
        # Cut short after suffixed scans: an error for the operator, never a code that acts.
        assert not after[0].ok and after[0].error.startswith("incomplete")
        assert got.take(1)[0].data == "AFTER-2"
    got.assert_quiet(0.1)
    stats = reader.stats
    assert stats.reconnects == 1
    assert stats.io_errors >= 1  # the lost read (an absent path is watched, not opened)


def test_repeated_unplugs_never_kill_the_thread(sim: ScannerSimulator, reader_factory) -> None:
    got = Collector()
    reader = reader_factory(sim, got, backoff_min_s=0.01, backoff_max_s=0.05)
    for i in range(5):
        sim.scan(f"ROUND-{i}")
        assert got.take(1)[0].data == f"ROUND-{i}"
        sim.unplug()
        wait_until(lambda: not reader.connected)
        sim.replug()
        assert reader.wait_connected(TIMEOUT)
    assert reader.running
    assert reader.reconnects == 5


def test_backoff_is_bounded_while_device_is_absent(tmp_path) -> None:
    got = Collector()
    # A path that is there but is no serial device (a wrong --scanner): opens keep failing.
    not_a_port = tmp_path / "not-a-port"
    not_a_port.write_bytes(b"")
    reader = ScannerReader(str(not_a_port), got, backoff_min_s=0.01, backoff_max_s=0.08)
    reader.start()
    try:
        time.sleep(0.6)
        assert reader.running and not reader.connected
        # 0.01+0.02+0.04+0.08+0.08... : about 8-10 attempts in 0.6 s, not thousands, not one.
        assert 4 <= reader.stats.io_errors <= 20
        assert reader.last_error
    finally:
        t0 = time.monotonic()
        assert reader.stop(timeout=2.0)
        assert time.monotonic() - t0 < 1.0


def test_an_absent_device_is_watched_and_opened_as_soon_as_it_appears(tmp_path) -> None:
    link = tmp_path / "scanner"
    events: list[PortEvent] = []
    got = Collector()
    # A long backoff would leave a replugged scanner unread for seconds; the path is watched.
    reader = ScannerReader(
        str(link), got, backoff_min_s=0.02, backoff_max_s=30.0, on_port=events.append
    ).start()
    try:
        time.sleep(0.3)
        assert not reader.connected and reader.stats.io_errors == 1  # noted once, not retried
        with ScannerSimulator(port_link=str(link)) as sim:
            assert reader.wait_connected(TIMEOUT)
            sim.unplug()
            wait_until(lambda: not reader.connected)
            time.sleep(0.3)
            sim.replug()
            assert reader.wait_connected(TIMEOUT)
            sim.scan("AFTER")
            assert got.take(1)[0].data == "AFTER"
        wait_until(lambda: len(events) == 4)
    finally:
        assert reader.stop()
    assert [e.kind for e in events] == ["open", "lost", "open again", "lost"]
    assert all(e.url == str(link) for e in events)
    assert events[1].error and events[0].error is None
    assert events[0].at <= events[1].at <= events[2].at


def test_device_appearing_later_is_picked_up(tmp_path, reader_factory) -> None:
    link = tmp_path / "late-scanner"
    got = Collector()
    reader = ScannerReader(str(link), got, backoff_max_s=0.1).start()
    try:
        time.sleep(0.15)
        assert not reader.connected
        with ScannerSimulator(port_link=str(link)) as sim:
            assert reader.wait_connected(TIMEOUT)
            sim.scan("LATE")
            assert got.take(1)[0].data == "LATE"
            assert reader.reconnects == 0  # first connection, not a reconnection
    finally:
        assert reader.stop()


def test_on_scan_exception_is_logged_not_fatal(
    sim: ScannerSimulator, reader_factory, caplog
) -> None:
    got = Collector()

    def flaky(scan: Scan) -> None:
        if scan.data == "BOOM":
            raise RuntimeError("server said no")
        got(scan)

    reader = reader_factory(sim, flaky)
    sim.scan("BOOM")
    sim.scan("FINE")
    assert got.take(1)[0].data == "FINE"
    assert reader.stats.callback_errors == 1
    assert reader.running
    assert "on_scan failed" in caplog.text


def test_thousand_scans_no_loss_no_duplicates(sim: ScannerSimulator, reader_factory) -> None:
    got = Collector()
    reader = reader_factory(sim, got)
    expected = [f"S26-{i:06d}-K" for i in range(1000)]
    t0 = time.monotonic()
    # Write from another thread so a stalled reader fails on the deadline, not by blocking us.
    writer = threading.Thread(target=lambda: [sim.scan(code, aim="]C0") for code in expected])
    writer.start()
    scans = got.take(1000, timeout=15.0)
    writer.join(TIMEOUT)
    assert [s.data for s in scans] == expected
    assert all(s.symbology == "]C0" and s.ok for s in scans)
    got.assert_quiet(0.1)
    assert reader.stats.scans == 1000
    assert time.monotonic() - t0 < 15.0


def test_several_readers_side_by_side() -> None:
    sims = [ScannerSimulator(suffix=s) for s in ("CR", "CRLF", "TAB")]
    got = Collector()
    group = ScannerGroup(
        ScannerReader(sim.port, got, suffix=suffix, name=f"bench-1/{suffix}", backoff_max_s=0.2)
        for sim, suffix in zip(sims, ("CR", "CRLF", "TAB"), strict=True)
    )
    try:
        group.start()
        for reader in group.readers:
            assert reader.wait_connected(TIMEOUT)
        for round_ in range(20):
            for sim in sims:
                sim.scan(f"{sim.suffix!r}-{round_}", split=2)
        scans = got.take(60)
        by_source: dict[str, list[str]] = {}
        for scan in scans:
            by_source.setdefault(scan.source or "", []).append(scan.data)
        assert by_source == {
            f"bench-1/{suffix}": [f"{sim.suffix!r}-{r}" for r in range(20)]
            for sim, suffix in zip(sims, ("CR", "CRLF", "TAB"), strict=True)
        }
        # Unplugging one scanner leaves the others reading.
        sims[0].unplug()
        sims[1].scan("still here")
        assert got.take(1)[0].data == "still here"
        assert set(group.stats) == {"bench-1/CR", "bench-1/CRLF", "bench-1/TAB"}
    finally:
        t0 = time.monotonic()
        assert group.stop(timeout=3.0)
        assert time.monotonic() - t0 < 2.0
        for sim in sims:
            sim.close()


def test_stop_is_prompt_and_idempotent(sim: ScannerSimulator) -> None:
    reader = ScannerReader(sim.port, Collector(), gap_s=None)
    assert reader.stop() is True  # never started
    reader.start()
    assert reader.wait_connected(TIMEOUT)
    t0 = time.monotonic()
    assert reader.stop(timeout=2.0)
    assert time.monotonic() - t0 < 0.5
    assert not reader.connected
    assert reader.stop() is True
    # And it can be started again.
    got = Collector()
    reader.on_scan = got
    reader.start()
    try:
        assert reader.wait_connected(TIMEOUT)
        sim.scan("AGAIN")
        assert got.take(1)[0].data == "AGAIN"
    finally:
        assert reader.stop()


def test_loop_url_works(reader_factory) -> None:
    # Any pyserial URL: loop:// echoes what we write, so the reader frames our own bytes.
    got = Collector()
    reader = ScannerReader("loop://", got).start()
    try:
        assert reader.wait_connected(TIMEOUT)
        reader._port.write(b"]E04006381333931\r")  # type: ignore[union-attr]
        (scan,) = got.take(1)
        assert (scan.symbology, scan.data) == ("]E0", "4006381333931")
    finally:
        assert reader.stop()


def test_simulator_port_is_stable_across_replug(sim: ScannerSimulator) -> None:
    first = sim.device
    assert os.path.realpath(sim.port) == first
    sim.unplug()
    assert not os.path.lexists(sim.port)
    with pytest.raises(OSError):
        sim.scan("nobody home")
    sim.replug()
    assert os.path.realpath(sim.port) == sim.device
    assert sim.plugs == 2


def test_simulator_write_times_out_without_a_reader() -> None:
    with ScannerSimulator(write_timeout_s=0.3) as sim:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            for _ in range(10_000):
                sim.scan("X" * 100)
        assert time.monotonic() - t0 < 3.0
