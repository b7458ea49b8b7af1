"""The release of this software, as reports and the API docs name it."""

__version__ = "0.1.0"
