"""The bench's mode table agrees with the scan commands and with the custody table."""

from __future__ import annotations

from lims import custody, scanning
from lims.bench.modes import BY_COMMAND, MODES


def test_every_mode_command_is_a_mode_of_the_table():
    commands = {c: m for c, m in scanning.COMMANDS.items() if m is not None}
    assert {c: m.name for c, m in BY_COMMAND.items()} == commands


def test_every_field_a_modes_move_requires_comes_from_a_station_setting():
    for mode in MODES.values():
        if mode.handles_material:  # supplier material (lims.manufacturing), no tube moves
            assert not mode.supplies and not mode.asks
            continue
        t = custody.TRANSITIONS[mode.action]
        assert set(mode.required) <= set(mode.supplies), mode.name
        # A setting the bench may leave unscanned is asked for; one it always has is not.
        for name in mode.required:
            assert name in mode.asks or mode.supplies[name] in ("operator", "condition")
        assert set(mode.supplies) <= set(t.requires) | set(t.optional), mode.name
