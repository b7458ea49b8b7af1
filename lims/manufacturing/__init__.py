"""Viral vector manufacturing: lot numbers a label can print, material lots received by GS1 scan
and released by QA, genealogy (inputs, where used, made from), process templates and batch
records (docs/manufacturing.md)."""
