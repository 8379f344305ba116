"""/docs works with no internet: every asset it loads is served by the API itself."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.config import Settings


@pytest.fixture(scope="module")
def secured(database_url: str) -> Iterator[TestClient]:
    settings = Settings(database_url=database_url, auth_enabled=True)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_docs_load_only_local_assets_without_a_token(secured: TestClient) -> None:
    page = secured.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assets += re.findall(r"""url: ?["']([^"']+)["']""", page.text)
    assert assets, page.text
    for asset in assets:
        assert asset.startswith("/"), f"/docs loads {asset} from elsewhere"
        assert secured.get(asset).status_code == 200, asset
    js = secured.get("/static/swagger-ui/swagger-ui-bundle.js")
    assert "SwaggerUIBundle" in js.text
    assert secured.get("/redoc").status_code == 404  # it would need a CDN
