"""The bench PC's program runs without the server: agent, printers, scanners never load lims."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_agent_printers_and_scanners_load_no_lims_module():
    code = (
        "import sys, agent.station, agent.printloop, printers.claim, printers.mock, scanners.sim\n"
        "print(sorted(m for m in sys.modules if m == 'lims' or m.startswith('lims.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
