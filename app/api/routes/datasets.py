"""/datasets: upload (multipart, streamed to a temporary file), list, show, delete."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from app.api.deps import OwnerDep, PrincipalDep, SessionDep, StateDep
from app.datasets import service
from app.errors import InvalidInput, PayloadTooLarge
from app.nas.spec import Task
from app.schemas.datasets import ColumnType, DatasetOut, DatasetPage
from app.schemas.problems import Problem

router = APIRouter(prefix="/datasets", tags=["datasets"])

#: Room for the form's other fields and the multipart framing, over the file's own limit.
FORM_SLACK_BYTES = 64 * 1024
FIELDS = ("name", "target", "task", "format", "column_types")

PROBLEMS: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such dataset (or another owner's)"},
    409: {"model": Problem, "description": "A queued or running run uses it"},
    413: {"model": Problem, "description": "The file is over CEREBROS_MAX_DATASET_BYTES"},
    422: {"model": Problem, "description": "Invalid file or field; `errors` names it"},
    503: {"model": Problem, "description": "Database unavailable"},
}

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "CSV (UTF-8, header row), Parquet, or .npz with "
                            "arrays x and y",
                        },
                        "name": {"type": "string", "maxLength": 200},
                        "target": {
                            "type": "string",
                            "description": "The target column (CSV, Parquet)",
                        },
                        "task": {"type": "string", "enum": ["classification", "regression"]},
                        "format": {"type": "string", "enum": ["csv", "parquet", "npz"]},
                        "column_types": {
                            "type": "string",
                            "description": 'JSON object, e.g. {"zip": "categorical"}',
                        },
                    },
                }
            }
        },
    }
}


class UploadFields(BaseModel):
    """The upload's text fields (the file aside)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    target: str | None = Field(default=None, max_length=200)
    task: Task | None = None
    format: str | None = Field(default=None, max_length=16)
    column_types: dict[str, ColumnType] | None = None


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the dataset file is over the limit of {limit} bytes (CEREBROS_MAX_DATASET_BYTES)",
        field="file",
    )


async def _counted(request: Request, most: int, limit: int) -> AsyncGenerator[bytes, None]:
    """The request body, refused as soon as more than ``most`` bytes came."""
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > most:
            raise _too_large(limit)
        yield chunk


def _fields(values: dict[str, str]) -> UploadFields:
    data: dict[str, Any] = dict(values)
    if "column_types" in data:
        try:
            data["column_types"] = json.loads(data["column_types"])
        except ValueError:
            raise InvalidInput(
                'column_types must be a JSON object, e.g. {"zip": "categorical"}',
                field="column_types",
            ) from None
    try:
        return UploadFields.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidInput(f"{field}: {first['msg']}", field=field) from exc


async def _read_form(request: Request, limit: int) -> tuple[UploadFile, UploadFields]:
    """Parse the multipart body as it streams in.

    The file goes to a temporary file (on disk past 1 MiB), and the upload stops with a 413 once
    it is over ``limit``.
    """
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise InvalidInput(
            "send the dataset as multipart/form-data with a file field", field="file"
        )
    most = limit + FORM_SLACK_BYTES
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > most:
        raise _too_large(limit)
    parser = MultiPartParser(
        request.headers,
        _counted(request, most, limit),
        max_files=1,
        max_fields=len(FIELDS),
        max_part_size=FORM_SLACK_BYTES,
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise InvalidInput(
            f"the multipart body cannot be read: {exc.message}", field="body"
        ) from None
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        await form.close()
        raise InvalidInput("the form has no file field (the dataset file)", field="file")
    if upload.size is not None and upload.size > limit:
        await form.close()
        raise _too_large(limit)
    texts: dict[str, str] = {}
    for key, value in form.multi_items():
        if key == "file":
            continue
        if key not in FIELDS or not isinstance(value, str):
            await form.close()
            raise InvalidInput(f"unknown form field {key!r}; fields: file, {FIELDS}", field=key)
        texts[key] = value
    try:
        return upload, _fields(texts)
    except InvalidInput:
        await form.close()
        raise


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetOut,
    responses=PROBLEMS,
    openapi_extra=UPLOAD_BODY,
)
async def upload_dataset(
    request: Request, response: Response, state: StateDep, principal: PrincipalDep
) -> DatasetOut:
    """Upload a dataset (multipart: `file`, and `target` for CSV and Parquet).

    The schema is inferred (column types, missing values, classes or target range) and
    every check is made before anything is stored; a run uses the dataset by its `id`
    as `dataset_id`.
    """
    upload, fields = await _read_form(request, state.settings.max_dataset_bytes)
    try:
        row = await service.upload_dataset(
            state.sessions,
            upload.file,
            upload.size or 0,
            service.UploadForm(
                filename=upload.filename,
                name=fields.name,
                format=fields.format,
                target=fields.target,
                task=fields.task,
                column_types=fields.column_types,
            ),
            owner=principal.owner,
        )
    finally:
        await upload.close()
    response.headers["Location"] = f"/datasets/{row.id}"
    return service.dataset_out(row)


@router.get("", response_model=DatasetPage, responses=PROBLEMS)
async def list_datasets(
    session: SessionDep,
    owner: OwnerDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> DatasetPage:
    """Datasets, newest first (an admin sees every owner's)."""
    rows, next_cursor = await service.list_datasets(session, owner, limit, cursor)
    return DatasetPage(items=[service.dataset_summary(r) for r in rows], next_cursor=next_cursor)


@router.get("/{dataset_id}", response_model=DatasetOut, responses=PROBLEMS)
async def get_dataset(dataset_id: str, session: SessionDep, owner: OwnerDep) -> DatasetOut:
    """The dataset with its schema and its first rows.

    The schema gives the columns and their types, missing values, how each reaches the model, and
    the target's classes or range.
    """
    return service.dataset_out(await service.get_dataset(session, dataset_id, owner))


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT, responses=PROBLEMS)
async def delete_dataset(dataset_id: str, state: StateDep, owner: OwnerDep) -> Response:
    """Delete the dataset (409 while a queued or running run uses it)."""
    await service.delete_dataset(state.sessions, dataset_id, owner)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
