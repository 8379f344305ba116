"""Runs: the repository that owns their SQL and the submission service."""
