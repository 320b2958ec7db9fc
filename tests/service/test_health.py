"""/healthz, /readyz, /metrics and the served OpenAPI document."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from churnguard.project import Project
from service.helpers import READ, ClientFactory, error, headers


def test_health_and_ready(reader: TestClient) -> None:
    assert reader.get("/healthz").json() == {"status": "ok"}
    ready = reader.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready" and body["store"] and body["champion"].startswith("gbdt-")
    assert body["scores_as_of"] is not None


def test_not_ready_without_a_champion(make_client: ClientFactory, project_dir: Path) -> None:
    with Project.load(project_dir).open_store() as store:
        store.con.execute("DELETE FROM model_aliases")
    client = make_client()
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["status"] == "not_ready"
    assert error(client.get("/v1/users/u0000001/risk", headers=headers(READ))) == \
        (503, "no_model")


def test_metrics_count_routes_by_template_never_by_raw_path(reader: TestClient) -> None:
    reader.get("/v1/users/u0000007/risk", headers=headers(READ))
    reader.get("/v1/users/no-such-person-3321/risk", headers=headers(READ))
    response = reader.get("/metrics", headers=headers(READ))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert ('churnguard_http_requests_total{method="GET",route="/v1/users/{user_id}/risk",'
            'status="404"} 1') in text
    assert ('churnguard_http_request_duration_seconds_bucket{method="GET",'
            'route="/v1/users/{user_id}/risk",le="+Inf"}') in text
    assert "u0000007" not in text and "no-such-person" not in text
    assert error(reader.get("/metrics")) == (401, "missing_api_key")


def test_openapi_is_served_and_versioned(reader: TestClient) -> None:
    spec = reader.get("/openapi.json").json()
    paths = set(spec["paths"])
    assert {"/v1/events", "/v1/users/{user_id}/risk", "/v1/users/{user_id}", "/v1/score",
            "/v1/models", "/v1/models/{version}/promote", "/v1/models/rollback", "/healthz",
            "/readyz", "/metrics"} <= paths
    assert all(p.startswith("/v1/") for p in paths - {"/healthz", "/readyz", "/metrics"})
    assert "APIKeyHeader" in spec["components"]["securitySchemes"]
