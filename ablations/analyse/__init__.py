"""Analyse: tidy frames from the store, per-cell statistics and verdicts, diagnostics readers. Reads the store."""
