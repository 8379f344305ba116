"""A typed, synchronous Python client of the Cerebros NAS run service (httpx).

client = CerebrosClient("http://127.0.0.1:8000")
run = client.submit({"dataset_id": "iris", "budget": {"max_trials": 2}})
for event in client.events(run.id):
    print(event.id, event.name, event.payload)
"""

from __future__ import annotations

import builtins
import json
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from app.schemas.datasets import DatasetOut, DatasetPage
from app.schemas.runs import EventOut, EventPage, LiveEventOut, RunOut, RunPage
from app.schemas.trials import PredictResponse, TrialDetail, TrialList

__all__ = ["END_EVENT", "CerebrosClient", "ClientError"]

END_EVENT = "stream.end"  # the server's "stream complete" control event
RECONNECT_EVENT = "stream.reconnect"  # the server's "reconnect with Last-Event-ID" event


class ClientError(Exception):
    """The API answered with an error; `problem` is its JSON problem body."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        super().__init__(f"{status} {problem.get('title', '')}: {problem.get('detail', '')}")

    @property
    def fields(self) -> list[str]:
        """Names of the offending fields, from the problem's `errors`."""
        return [str(e.get("field")) for e in self.problem.get("errors", [])]


class StreamRevoked(ClientError):
    """The stream ended because the token it was opened with was revoked (a 401 in effect)."""

    def __init__(self) -> None:
        super().__init__(401, {"title": "Unauthorized", "detail": "the API token was revoked"})


def _raise_for_problem(response: httpx.Response) -> None:
    if response.is_success:
        return
    response.read()
    try:
        body = response.json()
    except ValueError:
        body = {"title": response.reason_phrase, "detail": response.text}
    if not isinstance(body, dict):
        body = {"detail": body}
    raise ClientError(response.status_code, body)


def _sse_events(lines: Iterator[str]) -> Iterator[tuple[str | None, str, str]]:
    """Parse an SSE byte stream's lines into (id, event, data) tuples (comments skipped)."""
    event_id: str | None = None
    name = "message"
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield event_id, name, "\n".join(data)
            event_id, name, data = None, "message", []
            continue
        if line.startswith(":"):
            continue  # keep-alive ping
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "id":
            event_id = value
        elif field == "event":
            name = value
        elif field == "data":
            data.append(value)


class CerebrosClient:
    """Talks to one API (`base_url`), optionally with a bearer `token`."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> CerebrosClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        response = self.http.request(method, url, **kw)
        _raise_for_problem(response)
        return response

    # --- runs ------------------------------------------------------------------------------

    def submit(self, spec: dict[str, Any], idempotency_key: str | None = None) -> RunOut:
        """POST /runs; the same `idempotency_key` and body return the same run."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return RunOut.model_validate(
            self._request("POST", "/runs", json=spec, headers=headers).json()
        )

    def get(self, run_id: uuid.UUID | str) -> RunOut:
        return RunOut.model_validate(self._request("GET", f"/runs/{run_id}").json())

    def list(
        self, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> RunPage:
        """One page of runs, newest first; pass `next_cursor` back as `cursor`."""
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        if cursor:
            params["cursor"] = cursor
        return RunPage.model_validate(self._request("GET", "/runs", params=params).json())

    def cancel(self, run_id: uuid.UUID | str) -> RunOut:
        return RunOut.model_validate(self._request("POST", f"/runs/{run_id}/cancel").json())

    # --- trials and results ----------------------------------------------------------------

    def trials(self, run_id: uuid.UUID | str, sort: str = "number") -> TrialList:
        """The run's trials by number, or best first with `sort="score"`."""
        response = self._request("GET", f"/runs/{run_id}/trials", params={"sort": sort})
        return TrialList.model_validate(response.json())

    def trial(self, run_id: uuid.UUID | str, number: int) -> TrialDetail:
        response = self._request("GET", f"/runs/{run_id}/trials/{number}")
        return TrialDetail.model_validate(response.json())

    def download_model(self, run_id: uuid.UUID | str, path: Path | str) -> Path:
        """Save the best model (`.keras`, one number per column) to `path`; return the path."""
        return self._download(f"/runs/{run_id}/model", Path(path))

    def download_predictor(self, run_id: uuid.UUID | str, path: Path | str) -> Path:
        """Save the best model as a predictor bundle (`.pyz`) to `path`; return the path.

        `python PATH rows.csv` predicts raw rows, strings included (see the README).
        """
        return self._download(f"/runs/{run_id}/predictor", Path(path))

    def _download(self, url: str, target: Path) -> Path:
        with self.http.stream("GET", url) as response:
            _raise_for_problem(response)
            tmp = target.with_name(target.name + ".part")
            with tmp.open("wb") as fh:
                for chunk in response.iter_bytes():
                    fh.write(chunk)
        tmp.replace(target)
        return target

    def predict(
        self,
        run_id: uuid.UUID | str,
        rows: Sequence[Sequence[float | str | None] | Mapping[str, float | str | None]],
    ) -> builtins.list[Any]:
        """Predictions of the best model for raw feature rows.

        Rows are lists in column order or, for uploaded datasets, objects keyed by column name.
        """
        body = {"rows": [dict(row) if isinstance(row, Mapping) else list(row) for row in rows]}
        response = self._request("POST", f"/runs/{run_id}/predict", json=body)
        return PredictResponse.model_validate(response.json()).predictions

    # --- datasets --------------------------------------------------------------------------

    def upload_dataset(
        self,
        path: Path | str,
        *,
        target: str | None = None,
        name: str | None = None,
        task: str | None = None,
        column_types: dict[str, str] | None = None,
        format: str | None = None,
        timeout: float = 600.0,
    ) -> DatasetOut:
        """POST /datasets: upload a CSV, Parquet or ``.npz`` file (streamed from disk).

        ``target`` names the target column (CSV, Parquet); ``task`` (classification or
        regression) and ``column_types`` (column -> numeric or categorical) override what
        is inferred. Use the answer's ``id`` as a run spec's ``dataset_id``.
        """
        file = Path(path)
        fields = {"target": target, "name": name, "task": task, "format": format}
        data = {key: value for key, value in fields.items() if value is not None}
        if column_types:
            data["column_types"] = json.dumps(column_types)
        with file.open("rb") as fh:
            response = self._request(
                "POST",
                "/datasets",
                files={"file": (file.name, fh)},
                data=data,
                timeout=timeout,
            )
        return DatasetOut.model_validate(response.json())

    def list_datasets(self, limit: int = 50, cursor: str | None = None) -> DatasetPage:
        """One page of datasets, newest first; pass `next_cursor` back as `cursor`."""
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        return DatasetPage.model_validate(self._request("GET", "/datasets", params=params).json())

    def get_dataset(self, dataset_id: str) -> DatasetOut:
        """The dataset with its schema (columns, target classes or range, sample rows)."""
        return DatasetOut.model_validate(self._request("GET", f"/datasets/{dataset_id}").json())

    def delete_dataset(self, dataset_id: str) -> None:
        """DELETE /datasets/{id}; a 409 `ClientError` while a queued or running run uses it."""
        self._request("DELETE", f"/datasets/{dataset_id}")

    # --- events ----------------------------------------------------------------------------

    def event_page(self, run_id: uuid.UUID | str, after: int = 0, limit: int = 500) -> EventPage:
        """One page of the run's stored events with id > `after` (no streaming)."""
        params = {"after": after, "limit": limit}
        response = self._request("GET", f"/runs/{run_id}/events", params=params)
        return EventPage.model_validate(response.json())

    def events(
        self,
        run_id: uuid.UUID | str | None,
        pattern: str | None = None,
        after: int | None = None,
        *,
        max_retries: int = 10,
        read_timeout: float = 60.0,
    ) -> Iterator[EventOut]:
        """The run's events (all runs' with `run_id=None`) as they come, until the stream ends.

        A dropped connection is resumed with `Last-Event-ID`, so nothing is missed or repeated;
        after `max_retries` failed reconnections in a row the last error is raised. Live-only
        notifications (per-epoch progress) are left out: `events_and_progress` has them.
        """
        for event in self.events_and_progress(
            run_id, pattern, after, max_retries=max_retries, read_timeout=read_timeout
        ):
            if isinstance(event, EventOut):
                yield event

    def events_and_progress(
        self,
        run_id: uuid.UUID | str | None,
        pattern: str | None = None,
        after: int | None = None,
        *,
        max_retries: int = 10,
        read_timeout: float = 60.0,
    ) -> Iterator[EventOut | LiveEventOut]:
        """`events`, with the live-only notifications too (they have no id; never replayed)."""
        url = f"/runs/{run_id}/events/stream" if run_id is not None else "/events/stream"
        last_id = after
        failures = 0
        while True:
            params = {"pattern": pattern} if pattern else {}
            headers = {"Accept": "text/event-stream"}
            if last_id is not None:
                headers["Last-Event-ID"] = str(last_id)
            timeout = httpx.Timeout(self.http.timeout.connect, read=read_timeout)
            try:
                with self.http.stream(
                    "GET", url, params=params, headers=headers, timeout=timeout
                ) as response:
                    _raise_for_problem(response)
                    for event_id, name, data in _sse_events(response.iter_lines()):
                        if name == END_EVENT:
                            if json.loads(data or "{}").get("reason") == "token_revoked":
                                raise StreamRevoked
                            return
                        if name == RECONNECT_EVENT:
                            wait_ms = json.loads(data or "{}").get("retry_ms", 1000)
                            time.sleep(min(float(wait_ms), 30_000.0) / 1000)
                            break  # resume below with Last-Event-ID
                        failures = 0
                        body = json.loads(data)
                        if body.get("live"):
                            yield LiveEventOut.model_validate(body)
                            continue
                        event = EventOut.model_validate(body)
                        last_id = int(event_id) if event_id else event.id
                        yield event
            except (httpx.TransportError, httpx.RemoteProtocolError, ClientError) as exc:
                # 503: the service is up but its database is not (yet); try again like a drop.
                if isinstance(exc, ClientError) and exc.status != 503:
                    raise
                failures += 1
                if failures > max_retries:
                    raise
                time.sleep(min(0.2 * 2**failures, 5.0))
                continue
            # Closed without the end marker (server restart): resume where we were.
            failures += 1
            if failures > max_retries:
                return
            time.sleep(min(0.2 * 2**failures, 5.0))
