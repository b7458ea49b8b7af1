"""Viral vector manufacturing: lot numbers, material lots received by GS1 scan, genealogy."""
