"""`cerebros submit|runs|events`: client commands that talk to the API over HTTP only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.client import CerebrosClient, ClientError
from app.events import names
from app.events.patterns import compile_pattern
from app.schemas.runs import EventOut, RunOut

DEFAULT_URL = "http://127.0.0.1:8000"
FINAL = {"succeeded", "failed", "cancelled"}

UrlOpt = Annotated[
    str,
    typer.Option("--url", envvar="CEREBROS_URL", help="Base URL of the API.", show_default=True),
]

console = Console()

TokenOpt = Annotated[
    str | None,
    typer.Option("--token", envvar="CEREBROS_TOKEN", help="Bearer token.", show_default=False),
]


def _client(url: str, token: str | None) -> CerebrosClient:
    return CerebrosClient(url, token=token or None)


def _fail(exc: ClientError) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc}")
    for err in exc.problem.get("errors", []):
        console.print(f"  {err.get('field')}: {err.get('message')}")
    return typer.Exit(code=1)


class Watch:
    """Rich progress bars for one run: trials of the budget, epochs of the current trial."""

    def __init__(self, run: RunOut, progress: Progress) -> None:
        budget = run.spec.get("budget") or {}
        parameters = run.spec.get("parameters") or {}
        epochs = int(parameters.get("epochs") or 10)
        if budget.get("max_epochs"):
            epochs = min(epochs, int(budget["max_epochs"]))
        self.progress = progress
        self.direction = "max" if "accuracy" in str(run.spec.get("objective") or "") else "min"
        self.best: float | None = None
        self.trials = progress.add_task("trials", total=int(budget.get("max_trials") or 10))
        self.epochs = progress.add_task("epochs", total=epochs)

    def on_event(self, event: EventOut) -> None:
        payload = event.payload
        if event.name == names.TRIAL_STARTED:
            self.progress.reset(self.epochs, description=f"trial {payload.get('trial')} epochs")
        elif event.name == names.TRIAL_EPOCH:
            self.progress.update(self.epochs, completed=int(payload.get("epoch") or 0))
        elif event.name in (names.TRIAL_COMPLETED, names.TRIAL_PRUNED, names.TRIAL_FAILED):
            self.progress.advance(self.trials)
            self._better(payload.get("score"))
        elif event.name == names.STEP_STARTED:
            self.progress.console.log(f"step {payload.get('step')}")
        elif event.name in (names.RUN_COMPLETED, names.RUN_FAILED, names.RUN_CANCELLED):
            self.progress.console.log(f"{event.name} {json.dumps(payload)}")

    def _better(self, score: Any) -> None:
        if not isinstance(score, int | float):
            return
        if self.best is None or (
            score > self.best if self.direction == "max" else score < self.best
        ):
            self.best = float(score)
        self.progress.update(self.trials, description=f"trials (best {self.best:.4g})")


def _top_trials(client: CerebrosClient, run_id: str, count: int = 5) -> Table:
    trials = client.trials(run_id, sort="score")
    table = Table(title=f"Top trials ({trials.objective}, {trials.direction})")
    for column in ("trial", "status", "score", "best epoch", "epochs", "levels/units/neurons"):
        table.add_column(column)
    table.add_column("params", justify="right")
    for t in trials.items[:count]:
        arch = t.architecture
        table.add_row(
            str(t.number),
            t.status,
            f"{t.score:.4g}" if t.score is not None else "-",
            str(t.best_epoch or "-"),
            str(t.epochs_run),
            f"{arch.levels}/{arch.units}/{arch.neurons}" if arch else "-",
            str(t.params_count or "-"),
        )
    return table


def watch_run(client: CerebrosClient, run: RunOut) -> RunOut:
    """Follow the run's events with progress bars; return the final run."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        view = Watch(run, progress)
        for event in client.events(run.id):
            view.on_event(event)
    final = client.get(run.id)
    console.print(f"run {final.id}: [bold]{final.status}[/bold]")
    if final.status == "succeeded":
        console.print(_top_trials(client, str(final.id)))
    elif final.error:
        console.print(f"[red]{final.error.get('message', final.error)}[/red]")
    return final


def submit(
    spec_file: Annotated[Path, typer.Argument(help="JSON file with the run spec.", exists=True)],
    watch: Annotated[bool, typer.Option("--watch", help="Follow the run until it ends.")] = False,
    idempotency_key: Annotated[str | None, typer.Option(help="Idempotency-Key header.")] = None,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
) -> None:
    """Submit a NAS run (and, with --watch, follow it with progress bars)."""
    try:
        spec = json.loads(spec_file.read_text())
    except ValueError as exc:
        console.print(f"[red]error:[/red] {spec_file} is not JSON: {exc}")
        raise typer.Exit(code=2) from exc
    with _client(url, token) as client:
        try:
            run = client.submit(spec, idempotency_key=idempotency_key)
            console.print(f"run {run.id} {run.status}")
            if watch:
                final = watch_run(client, run)
                if final.status != "succeeded":
                    raise typer.Exit(code=1)
        except ClientError as exc:
            raise _fail(exc) from exc


def runs(
    status: Annotated[str | None, typer.Option(help="Only runs with this status.")] = None,
    limit: Annotated[int, typer.Option(help="How many runs.")] = 20,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
) -> None:
    """List runs, newest first."""
    with _client(url, token) as client:
        try:
            page = client.list(status=status, limit=limit)
        except ClientError as exc:
            raise _fail(exc) from exc
    table = Table(title="Runs")
    for column in ("id", "status", "dataset", "step", "created", "finished"):
        table.add_column(column)
    for run in page.items:
        table.add_row(
            str(run.id),
            run.status,
            str(run.spec.get("dataset_id", "")),
            run.current_step or "-",
            run.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            run.finished_at.strftime("%Y-%m-%d %H:%M:%S") if run.finished_at else "-",
        )
    console.print(table)


def events(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing live events.")
    ] = False,
    pattern: Annotated[str | None, typer.Option(help="Glob, e.g. cerebros.nas.trial.**")] = None,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
) -> None:
    """Print a run's events (one JSON line each); --follow streams them until the run ends."""
    if pattern:
        try:
            compile_pattern(pattern)
        except ValueError as exc:
            console.print(f"[red]error:[/red] --pattern: {exc}")
            raise typer.Exit(code=2) from exc
    with _client(url, token) as client:
        try:
            if follow:
                stream = client.events(run_id, pattern=pattern)
            else:
                stream = iter(_history(client, run_id, pattern))
            for event in stream:
                typer.echo(event.model_dump_json())
        except ClientError as exc:
            raise _fail(exc) from exc


def _history(client: CerebrosClient, run_id: str, pattern: str | None) -> list[EventOut]:
    """The events stored so far (one page after another)."""
    matcher = compile_pattern(pattern) if pattern else None
    out: list[EventOut] = []
    after = 0
    while True:
        page = client.event_page(run_id, after=after)
        out.extend(e for e in page.items if matcher is None or matcher.match(e.name))
        if not page.items:
            return out
        after = page.next_after or after


def register(cli: typer.Typer) -> None:
    """Add the client commands to the `cerebros` app."""
    cli.command()(submit)
    cli.command()(runs)
    cli.command()(events)
