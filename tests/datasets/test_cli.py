"""`cerebros datasets ...` and the typed client's dataset methods, against a real API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.client import CerebrosClient, ClientError
from tests.datasets.data import csv_bytes, mixed_table
from tests.support.processes import api_server, service_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("datasets-cli")
    with api_server(service_env(database_url), root) as url:
        yield url


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_client_methods(base: str, tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_bytes(csv_bytes(mixed_table()))
    with CerebrosClient(base) as client:
        dataset = client.upload_dataset(
            path, target="label", name="mine", column_types={"size": "numeric"}
        )
        assert dataset.name == "mine" and dataset.rows == 240
        assert client.get_dataset(dataset.id) == dataset
        assert dataset.id in [d.id for d in client.list_datasets(limit=200).items]
        with pytest.raises(ClientError) as err:
            client.upload_dataset(path, target="nope")
        assert err.value.status == 422 and err.value.fields == ["target"]
        client.delete_dataset(dataset.id)
        with pytest.raises(ClientError) as gone:
            client.get_dataset(dataset.id)
        assert gone.value.status == 404


def test_cli_upload_list_show_delete(base: str, tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_bytes(csv_bytes(mixed_table()))
    code, out = invoke("datasets", "upload", str(path), "--target", "label", "--url", base)
    assert code == 0, out
    dataset_id = next(w for w in out.split() if w.startswith("ds_"))
    assert "color" in out and "one_hot" in out and f'"dataset_id": "{dataset_id}"' in out

    code, out = invoke("datasets", "list", "--url", base)
    assert code == 0 and dataset_id in out

    code, out = invoke("datasets", "show", dataset_id[:10], "--json", "--url", base)
    assert code == 0, out
    assert json.loads(out)["id"] == dataset_id

    code, out = invoke(
        "datasets", "upload", str(path), "--target", "label", "--type", "size", "--url", base
    )
    assert code == 2 and "COLUMN=numeric" in out
    code, out = invoke("datasets", "upload", str(path), "--target", "nope", "--url", base)
    assert code == 1 and "error: 422" in out and "target:" in out

    code, out = invoke("datasets", "delete", dataset_id, "--url", base)
    assert code == 0 and "deleted" in out
    code, out = invoke("datasets", "show", dataset_id, "--url", base)
    assert code == 1 and "404" in out
