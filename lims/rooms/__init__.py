"""Cleanroom rental: room status, bookings by client organisations, line clearance, and
environmental monitoring against EU GMP Annex 1."""
