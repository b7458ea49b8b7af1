"""Barcode scanners on serial ports: framing (pure), a reconnecting reader, a pty simulator.

This package never imports `lims` or Flask: the station agent wires `on_scan` to the server.
"""

from scanners.framing import Framer, Scan
from scanners.reader import PortEvent, ReaderStats, ScannerGroup, ScannerReader

__all__ = ["Framer", "PortEvent", "ReaderStats", "Scan", "ScannerGroup", "ScannerReader"]
