"""Metrics, structured logs and health checks of the API and worker processes."""
