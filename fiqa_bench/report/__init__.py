"""Reporting: Markdown tables, EVRC figures and provenance stamps (I/O lives here)."""
