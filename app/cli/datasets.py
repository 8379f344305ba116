"""`cerebros datasets upload|list|show|delete`: uploaded datasets, over HTTP only."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from app.cli.client import DEFAULT_URL, TokenOpt, UrlOpt
from app.cli.errors import CliError
from app.cli.prefix import unique_match
from app.client import CerebrosClient
from app.schemas.datasets import DatasetOut

datasets_cli = typer.Typer(
    help="Upload your own data (CSV, Parquet, .npz) and manage it.", no_args_is_help=True
)
console = Console(log_path=False)

FULL_ID = re.compile(r"ds_[0-9a-f]{32}")
PREFIX = re.compile(r"(ds_)?[0-9a-f]{1,32}")
IdArg = Annotated[str, typer.Argument(help="The dataset's id (ds_...), or a unique prefix.")]


def _client(url: str, token: str | None) -> CerebrosClient:
    return CerebrosClient(url, token=token or None)


def _size(size: int) -> str:
    amount = float(size)
    for unit in ("B", "KiB", "MiB"):
        if amount < 1024:
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} GiB"


def resolve_dataset_id(client: CerebrosClient, given: str) -> str:
    """The full id `given` names: a whole id, or a prefix (with or without ds_) of one."""
    text = given.strip().lower()
    if FULL_ID.fullmatch(text):
        return text
    if not PREFIX.fullmatch(text):
        raise CliError(f"{given!r} is not a dataset id (ds_ and hex digits)", code=2)
    wanted = text if text.startswith("ds_") else f"ds_{text}"

    def page(cursor: str | None) -> tuple[list[str], str | None]:
        datasets = client.list_datasets(limit=200, cursor=cursor)
        return [d.id for d in datasets.items], datasets.next_cursor

    return unique_match(given, wanted, page, "dataset id")


def _parse_types(values: list[str] | None) -> dict[str, str] | None:
    if not values:
        return None
    types: dict[str, str] = {}
    for value in values:
        column, sep, kind = value.rpartition("=")
        if not sep or kind not in ("numeric", "categorical") or not column:
            raise CliError(f"--type {value!r}: give COLUMN=numeric or COLUMN=categorical", code=2)
        types[column] = kind
    return types


def _show(dataset: DatasetOut) -> None:
    size = _size(dataset.size_bytes)
    console.print(
        f"[bold]{dataset.id}[/bold]  {dataset.name}  ({dataset.format}, {size}, "
        f"{dataset.rows} rows, owner {dataset.owner})"
    )
    target = dataset.target_summary
    if target.classes is not None:
        classes = ", ".join(f"{c.label}: {c.count}" for c in target.classes[:20])
        console.print(f"target {target.column!r}: classification; classes {classes}")
    elif target.range is not None:
        span = target.range
        console.print(
            f"target {target.column!r}: regression; {span.min:.4g} to {span.max:.4g} "
            f"(mean {span.mean:.4g}, std {span.std:.4g})"
        )
    if target.missing:
        console.print(f"{target.missing} rows without a target are left out of training")
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for heading in ("column", "type", "missing", "encoding", "values"):
        table.add_column(heading)
    for column in dataset.columns:
        if column.summary is not None:
            values = f"{column.summary.min:.4g} .. {column.summary.max:.4g}"
        else:
            shown = ", ".join(str(c) for c in (column.categories or [])[:8])
            more = "+" if column.distinct_capped else ""
            values = f"{column.distinct}{more} distinct: {shown}"
        table.add_row(column.name, column.type, str(column.missing), column.encoding, values)
    console.print(table)


@datasets_cli.command("upload")
def upload(
    file: Annotated[Path, typer.Argument(help="CSV, Parquet or .npz file.", exists=True)],
    target: Annotated[
        str | None, typer.Option("--target", help="The target column (CSV, Parquet).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="A name (default: the file's).")] = None,
    task: Annotated[
        str | None, typer.Option(help="classification or regression (default: inferred).")
    ] = None,
    column_type: Annotated[
        list[str] | None,
        typer.Option("--type", help="COLUMN=numeric|categorical, overriding inference."),
    ] = None,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
) -> None:
    """Upload a dataset; prints its id (a run spec's dataset_id) and inferred schema."""
    with _client(url, token) as client:
        dataset = client.upload_dataset(
            file, target=target, name=name, task=task, column_types=_parse_types(column_type)
        )
    _show(dataset)
    console.print(f'use it: "dataset_id": "{dataset.id}"')


@datasets_cli.command("list")
def list_(
    limit: Annotated[int, typer.Option(help="How many datasets.")] = 50,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
) -> None:
    """Datasets, newest first."""
    with _client(url, token) as client:
        page = client.list_datasets(limit=limit)
    table = Table(title="Datasets", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("id", no_wrap=True, min_width=35, overflow="fold")
    for heading in ("name", "format", "size", "rows", "target", "task", "created"):
        table.add_column(heading)
    for d in page.items:
        table.add_row(
            d.id,
            d.name,
            d.format,
            _size(d.size_bytes),
            str(d.rows),
            d.target,
            d.task,
            d.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    console.print(table)


@datasets_cli.command("show")
def show(
    dataset_id: IdArg,
    as_json: Annotated[bool, typer.Option("--json", help="The API's JSON answer.")] = False,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
) -> None:
    """A dataset's schema: columns, types, missing values, target classes or range."""
    with _client(url, token) as client:
        dataset = client.get_dataset(resolve_dataset_id(client, dataset_id))
    if as_json:
        typer.echo(json.dumps(dataset.model_dump(mode="json"), indent=2))
    else:
        _show(dataset)


@datasets_cli.command("delete")
def delete(dataset_id: IdArg, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None) -> None:
    """Delete a dataset (refused while a queued or running run uses it)."""
    with _client(url, token) as client:
        full_id = resolve_dataset_id(client, dataset_id)
        client.delete_dataset(full_id)
    typer.echo(f"dataset {full_id} deleted")
