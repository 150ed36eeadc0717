"""The HTTP edge: health endpoints, the one error shape for what the router answers itself (404,
405) and for validation errors, and the OpenAPI document at /openapi.json and /docs."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.conftest import READ, assert_error, make_app


def test_health(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "checks": [{"name": "database", "ok": True}, {"name": "broker", "ok": True}],
    }


def test_readiness_names_what_is_down(worker: object) -> None:
    settings = {"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"}
    with TestClient(make_app(**settings)) as client:
        ready = client.get("/readyz")
    assert ready.status_code == 503
    error = assert_error(ready.json(), "not_ready", "database")
    assert "127.0.0.1" not in error["message"]  # no address for anonymous callers


def test_router_errors_have_the_shape(client: TestClient) -> None:
    assert_error(client.get("/v1/nothing", headers=READ).json(), "not_found")
    wrong = client.put("/v1/runs", headers=READ)
    assert wrong.status_code == 405
    assert_error(wrong.json(), "method_not_allowed")
    bad = client.get("/v1/runs", params={"limit": 0}, headers=READ)
    assert bad.status_code == 422
    assert_error(bad.json(), "invalid_request", "limit")


def test_openapi_documents_every_error(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert doc["info"]["title"] == "campaignflow"
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            assert "4XX" in op["responses"], (method, path)
            assert "422" not in op["responses"] or "ErrorBody" in str(op["responses"]["422"]), (method, path)
    assert "bearer" in str(doc["components"]["securitySchemes"]).lower()


def test_the_docs_page_loads_swagger_ui_from_this_server(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "cdn." not in page.text, page.text
    assert "https://" not in page.text, page.text
    for asset, kind in [("swagger-ui-bundle.js", "javascript"), ("swagger-ui.css", "css")]:
        assert f"/docs/assets/{asset}" in page.text
        got = client.get(f"/docs/assets/{asset}")
        assert (got.status_code, kind in got.headers["content-type"]) == (200, True), asset
        assert len(got.content) > 100_000, asset
    assert client.get("/docs/assets/LICENSE").status_code == 404
    assert client.get("/docs/assets/..%2Fconsole.js").status_code == 404
