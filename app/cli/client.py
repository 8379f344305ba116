"""`cerebros submit|runs|events|cancel|trials|model`: client commands talking to the API.

They talk to it over HTTP only. Errors (API unreachable, problems) are reported by
`app.cli.errors`.
"""

from __future__ import annotations

import json
import re
import shlex
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from app.cli.errors import CliError
from app.cli.prefix import unique_match
from app.cli.watch import Watch, progress_bars
from app.client import CerebrosClient
from app.events.patterns import compile_pattern
from app.schemas.runs import EventOut, RunOut
from app.schemas.trials import TrialList

DEFAULT_URL = "http://127.0.0.1:8000"
PREFIX = re.compile(r"[0-9a-f-]{1,36}")
PAGE = 200

UrlOpt = Annotated[
    str,
    typer.Option("--url", envvar="CEREBROS_URL", help="Base URL of the API.", show_default=True),
]
TokenOpt = Annotated[
    str | None,
    typer.Option("--token", envvar="CEREBROS_TOKEN", help="Bearer token.", show_default=False),
]
RunIdArg = Annotated[str, typer.Argument(help="The run's id, or a unique prefix of it.")]

console = Console(log_path=False)  # the source line of a progress log helps no user


def _client(url: str, token: str | None) -> CerebrosClient:
    return CerebrosClient(url, token=token or None)


def resolve_run_id(client: CerebrosClient, given: str) -> str:
    """The full id of the run `given` names: a whole id, or a prefix only one run has.

    Prefixes are matched against the runs the API lists for this token (every page).
    """
    text = given.strip().lower()
    try:
        return str(uuid.UUID(text))
    except ValueError:
        pass
    if not PREFIX.fullmatch(text):
        raise CliError(f"{given!r} is not a run id (hex digits and dashes)", code=2)

    def page(cursor: str | None) -> tuple[list[str], str | None]:
        runs = client.list(limit=PAGE, cursor=cursor)
        return [str(r.id) for r in runs.items], runs.next_cursor

    return unique_match(given, text, page, "run id")


def top_trials(trials: TrialList, count: int = 5) -> Table:
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


def print_outcome(final: RunOut, trials: TrialList | None) -> None:
    """The run's end: its status, then its top trials or its error."""
    console.print(f"run {final.id}: [bold]{final.status}[/bold]")
    if final.status == "succeeded" and trials is not None:
        console.print(top_trials(trials))
    elif final.error:
        console.print(f"[red]{final.error.message or final.error.type}[/red]")


def _cli_command(*words: str, url: str) -> str:
    """A `cerebros` command line to print, with --url when it is not the default."""
    extra = ["--url", url] if url != DEFAULT_URL else []
    return shlex.join(["cerebros", *words, *extra])


def watch_run(client: CerebrosClient, run: RunOut, url: str = DEFAULT_URL) -> RunOut:
    """Follow the run's events with progress bars; return the final run.

    Ctrl+C stops watching only: the run goes on in its worker, and this says how to follow
    or cancel it.
    """
    try:
        with progress_bars(console) as progress:
            view = Watch(run, progress)
            for event in client.events_and_progress(run.id):
                view.on_event(event)
    except KeyboardInterrupt:
        console.print(
            f"stopped watching; run {run.id} goes on in the service.\n"
            f"  follow it: {_cli_command('events', str(run.id), '--follow', url=url)}\n"
            f"  cancel it: {_cli_command('cancel', str(run.id), url=url)}"
        )
        raise typer.Exit(130) from None
    final = client.get(run.id)
    print_outcome(final, client.trials(final.id, sort="score"))
    return final


def read_spec(spec_file: Path) -> dict[str, Any]:
    try:
        spec = json.loads(spec_file.read_text())
    except ValueError as exc:
        raise CliError(f"{spec_file} is not JSON: {exc}", code=2) from exc
    if not isinstance(spec, dict):
        raise CliError(f"{spec_file} must hold a JSON object (the run spec)", code=2)
    return spec


SpecArg = Annotated[Path, typer.Argument(help="JSON file with the run spec.", exists=True)]


def submit(
    spec_file: SpecArg,
    watch: Annotated[bool, typer.Option("--watch", help="Follow the run until it ends.")] = False,
    idempotency_key: Annotated[str | None, typer.Option(help="Idempotency-Key header.")] = None,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
) -> None:
    """Submit a NAS run (and, with --watch, follow it with progress bars)."""
    spec = read_spec(spec_file)
    with _client(url, token) as client:
        run = client.submit(spec, idempotency_key=idempotency_key)
        console.print(f"run {run.id} {run.status}")
        if watch and watch_run(client, run, url).status != "succeeded":
            raise typer.Exit(code=1)


def runs(
    status: Annotated[str | None, typer.Option(help="Only runs with this status.")] = None,
    limit: Annotated[int, typer.Option(help="How many runs.")] = 20,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
) -> None:
    """List runs, newest first (full ids: any unique prefix works where an id is taken)."""
    with _client(url, token) as client:
        page = client.list(status=status, limit=limit)
    # No vertical rules: with them the full row is wider than 120 columns.
    table = Table(title="Runs", box=box.SIMPLE_HEAD, pad_edge=False)
    # Never cut an id: it is what the other commands take. A terminal too narrow for all
    # 36 characters folds it onto a second line instead.
    table.add_column("id", no_wrap=True, min_width=36, overflow="fold")
    table.add_column("status", no_wrap=True, min_width=9)
    for column in ("dataset", "step", "created", "finished"):
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
    run_id: RunIdArg,
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
            raise CliError(f"--pattern: {exc}", code=2) from exc
    with _client(url, token) as client:
        full_id = resolve_run_id(client, run_id)
        if follow:
            stream = client.events(full_id, pattern=pattern)
        else:
            stream = iter(_history(client, full_id, pattern))
        for event in stream:
            typer.echo(event.model_dump_json())


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


def cancel(run_id: RunIdArg, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None) -> None:
    """Cancel a run: a queued one at once, a running one within an epoch (then undone)."""
    with _client(url, token) as client:
        run = client.cancel(resolve_run_id(client, run_id))
    state = "cancelled" if run.status == "cancelled" else f"{run.status}, cancel requested"
    typer.echo(f"run {run.id}: {state}")


def trials(
    run_id: RunIdArg,
    top: Annotated[int, typer.Option(help="How many trials, best first.")] = 10,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
) -> None:
    """A run's trials, best score first."""
    with _client(url, token) as client:
        ranked = client.trials(resolve_run_id(client, run_id), sort="score")
    console.print(top_trials(ranked, count=top))


def model(
    run_id: RunIdArg,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Where to save it [default: RUN_ID.keras, or RUN_ID.pyz with --predictor].",
            show_default=False,
        ),
    ] = None,
    predictor: Annotated[
        bool,
        typer.Option(
            "--predictor",
            help="Save a runnable bundle that takes raw rows, strings included: "
            "`python FILE.pyz rows.csv`.",
        ),
    ] = False,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
) -> None:
    """Download a succeeded run's best model (.keras), or with --predictor a bundle (.pyz)."""
    with _client(url, token) as client:
        full_id = resolve_run_id(client, run_id)
        target = output or Path(f"{full_id}.{'pyz' if predictor else 'keras'}")
        if predictor:
            client.download_predictor(full_id, target)
        else:
            client.download_model(full_id, target)
    hint = f"  (python {shlex.quote(str(target))} rows.csv)" if predictor else ""
    typer.echo(f"saved {target}{hint}")


def register(cli: typer.Typer) -> None:
    """Add the client commands to the `cerebros` app."""
    for command in (submit, runs, events, cancel, trials, model):
        cli.command()(command)
