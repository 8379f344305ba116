"""Which failed jobs the queue tries again: those whose error says it is retryable."""

from __future__ import annotations

from typing import TYPE_CHECKING

from procrastinate import RetryStrategy

from app.errors import CerebrosError, TransientError

if TYPE_CHECKING:
    from procrastinate.jobs import Job
    from procrastinate.retry import RetryDecision

# TransientError: the error a job raises to be tried again (defined with the others).
__all__ = ["RetryRetryableErrors", "TransientError"]


class RetryRetryableErrors(RetryStrategy):
    """procrastinate's `RetryStrategy` (the same attempts and waits), for retryable errors only.

    Retryability is data on the error (`CerebrosError.retryable`); anything else (a bug, a
    run that failed on its own merits) fails the job at once.
    """

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if not (isinstance(exception, CerebrosError) and exception.retryable):
            return None
        return super().get_retry_decision(exception=exception, job=job)
