"""The procrastinate job queue: app factory, the `ml` queue's tasks, retry policy."""
