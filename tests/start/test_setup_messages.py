"""Setting up a centre: a printer not plugged in yet, a name too wide for its labels."""

from __future__ import annotations

from pathlib import Path


def test_printer_add_warns_of_a_missing_device_and_adds_it_anyway(
    runner,  # noqa: ANN001
    client,  # noqa: ANN001
    auth,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    missing = str(tmp_path / "ttyUSB7")
    r = runner.invoke(args=["printer", "add", "ZD-LATER", missing])
    assert r.exit_code == 0, r.output
    assert f"warning: {missing} does not exist now" in r.output
    printers = client.get("/api/printers", headers=auth("admin")).json["printers"]
    assert any(p["name"] == "ZD-LATER" for p in printers)
    there = tmp_path / "ttyUSB8"
    there.write_text("")
    r = runner.invoke(args=["printer", "add", "ZD-NOW", str(there)])
    assert r.exit_code == 0 and "warning" not in r.output


def test_a_name_too_wide_for_its_labels_is_refused_with_the_limit(runner) -> None:  # noqa: ANN001
    r = runner.invoke(
        args=["setup", "sample-type", "WIDE", "Peripheral blood mononuclear cells, cryopreserved"]
    )
    assert r.exit_code != 0
    assert "too wide" in r.output and "dots, the limit" in r.output and " mm at " in r.output
