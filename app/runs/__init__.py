"""Runs: the owners of the runs and trials tables' SQL (`repository`, `trials`) and the
service functions (submit, cancel, progress)."""
