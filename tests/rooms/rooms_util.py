"""Helpers of the room tests: times relative to now, booking and approving through the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def at(hours: float) -> str:
    """Return the time `hours` from now (rounded to the minute) as API text."""
    t = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(hours=hours)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def book(client, headers, *, room="RM-C1", start=1.0, end=5.0, changeover=60, **extra):  # noqa: ANN001, ANN201
    """Request a booking from start to end hours from now; return the response."""
    body = {
        "room": room,
        "starts_at": at(start),
        "ends_at": at(end),
        "changeover_minutes": changeover,
        **extra,
    }
    return client.post("/api/bookings", json=body, headers=headers)


def approve(client, headers, number: str) -> dict:  # noqa: ANN001
    r = client.post(
        f"/api/bookings/{number}/transitions", json={"action": "approve"}, headers=headers
    )
    assert r.status_code == 200, r.json
    return r.json


def room_move(client, headers, room: str, action: str, **fields):  # noqa: ANN001, ANN201
    return client.post(
        f"/api/rooms/{room}/transitions", json={"action": action, **fields}, headers=headers
    )
