"""Every error is {"error": {"code", "message"}} with its stable code, and never echoes input."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from service.helpers import ADMIN, READ, WRITE, ClientFactory, error, headers

# Values a client might send that must never come back in an error body.
SECRET_EMAIL = "jane.doe.5521@example.com"
SECRET_ID = "cust-SECRET-8841"
SECRET_TEXT = "my card 4111 1111 1111 1111"


def assert_no_echo(response, *values: str) -> None:  # noqa: ANN001
    for value in values:
        assert value not in response.text, f"the error body repeats {value!r}"


def test_unknown_route_404_and_wrong_method_405(reader: TestClient) -> None:
    missing = reader.get(f"/v1/nothing/{SECRET_ID}", headers=headers(READ))
    assert error(missing) == (404, "not_found")
    assert_no_echo(missing, SECRET_ID)
    wrong = reader.put("/v1/models", headers=headers(ADMIN))
    assert error(wrong) == (405, "method_not_allowed")


def test_schema_violations_422_without_the_values(reader: TestClient) -> None:
    body = {"events": [
        {"user_id": SECRET_ID, "ts": SECRET_EMAIL, "type": "order"},        # not a datetime
        {"user_id": SECRET_ID, "ts": "2026-01-01T00:00:00Z", "type": "order",
         "rating": 9, "text": SECRET_TEXT},                                # rating out of range
        {"user_id": SECRET_ID, "ts": "2026-01-01T00:00:00Z", "type": "order",
         SECRET_EMAIL: "x"},                                                # unknown field
        {"ts": "2026-01-01T00:00:00Z", "type": SECRET_TEXT},                # no user_id
    ]}
    response = reader.post("/v1/events", headers=headers(WRITE), json=body)
    assert error(response) == (422, "invalid_request")
    details = response.json()["error"]["details"]
    assert {"location": ["body", "events", 0, "ts"]} .items() <= details[0].items()
    assert ["body", "events", 1, "rating"] in [d["location"] for d in details]
    assert ["body", "events", 2, "(field)"] in [d["location"] for d in details]
    assert {"location": ["body", "events", 3, "user_id"], "reason": "required"} in details
    assert_no_echo(response, SECRET_ID, SECRET_EMAIL, SECRET_TEXT, "4111")


def test_bad_query_and_path_values_422_without_the_values(reader: TestClient) -> None:
    response = reader.get(f"/v1/users/u0000001/risk?lang={SECRET_ID}", headers=headers(READ))
    assert error(response) == (422, "invalid_request")
    assert_no_echo(response, SECRET_ID)
    too_long = "x" * 300 + SECRET_ID
    response = reader.get(f"/v1/users/{too_long}/risk", headers=headers(READ))
    assert error(response) == (422, "invalid_request")
    assert_no_echo(response, SECRET_ID)


def test_malformed_json_422(reader: TestClient) -> None:
    response = reader.post("/v1/events", headers={**headers(WRITE),
                                                  "Content-Type": "application/json"},
                           content=b'{"events": [' + SECRET_EMAIL.encode())
    assert error(response) == (422, "invalid_request")
    assert_no_echo(response, SECRET_EMAIL)


def test_contract_violations_422_invalid_events_without_the_values(reader: TestClient) -> None:
    body = {"events": [
        {"user_id": SECRET_ID, "ts": "2026-01-01T10:00:00+01:00", "type": "order"},
        {"user_id": SECRET_ID, "ts": "2026-01-01T10:00:00", "type": "order",
         "text": SECRET_TEXT},                       # naive beside an offset: ambiguous
        {"user_id": SECRET_ID, "ts": "2026-01-01T10:00:00Z", "type": "   "},  # empty type
    ]}
    response = reader.post("/v1/events", headers=headers(WRITE), json=body)
    assert error(response) == (422, "invalid_events")
    details = response.json()["error"]["details"]
    assert details == [
        {"location": ["body", "events", 1, "ts"],
         "reason": "has no UTC offset while other events of the batch have one; send every "
                   "timestamp with an offset, or set ingest.timezone"},
        {"location": ["body", "events", 2, "type"], "reason": "is empty; every event needs a type"},
    ]
    assert_no_echo(response, SECRET_ID, SECRET_TEXT)
    # All or nothing: the good first event was not stored either.
    assert error(reader.get(f"/v1/users/{SECRET_ID}", headers=headers(READ))) == \
        (404, "user_not_found")


def test_body_and_batch_limits_413(make_client: ClientFactory) -> None:
    client = make_client(max_body_bytes=2_000, max_batch_events=3, max_score_ids=2,
                         warm_on_start=False)
    event = {"user_id": SECRET_ID, "ts": "2026-01-01T00:00:00Z", "type": "visit"}
    big = client.post("/v1/events", headers=headers(WRITE), json={"events": [event] * 40})
    assert error(big) == (413, "body_too_large")
    assert_no_echo(big, SECRET_ID)
    # Without a Content-Length the limit holds too, counted as the body streams in.
    chunks = iter([json.dumps({"events": [event] * 40}).encode()[i:i + 500]
                   for i in range(0, 4_000, 500)])
    streamed = client.post("/v1/events", headers={**headers(WRITE),
                                                  "Content-Type": "application/json"},
                           content=chunks)
    assert error(streamed) == (413, "body_too_large")
    many = client.post("/v1/events", headers=headers(WRITE), json={"events": [event] * 4})
    assert error(many) == (413, "batch_too_large")
    assert_no_echo(many, SECRET_ID)
    ids = client.post("/v1/score", headers=headers(READ), json={"user_ids": ["a", "b", "c"]})
    assert error(ids) == (413, "batch_too_large")


def test_unknown_user_and_model_404(reader: TestClient) -> None:
    for path in (f"/v1/users/{SECRET_ID}/risk", f"/v1/users/{SECRET_ID}"):
        response = reader.get(path, headers=headers(READ))
        assert error(response) == (404, "user_not_found")
        assert_no_echo(response, SECRET_ID)
    response = reader.post(f"/v1/models/{SECRET_ID}/promote", headers=headers(ADMIN))
    assert error(response) == (404, "model_not_found")
    assert_no_echo(response, SECRET_ID)


# -- domain errors: one base, a stable code, one mapping to HTTP -------------------------------
def _domain_classes() -> dict[str, type]:
    from churnguard.config import ConfigError
    from churnguard.customers import UnknownCustomerError
    from churnguard.erasure import ErasureError
    from churnguard.evaluate import BacktestError
    from churnguard.features import FeatureError
    from churnguard.ingest import IngestError
    from churnguard.intervene.deliver import DeliveryError
    from churnguard.intervene.measure import MeasurementError
    from churnguard.intervene.plan import PlanError
    from churnguard.intervene.uplift import UpliftError
    from churnguard.labels import LabelError
    from churnguard.monitor import MonitorError
    from churnguard.registry import RegistryError
    from churnguard.reporting import ReportError
    from churnguard.scoring import ScoringError
    from churnguard.service.settings import SettingsError
    from churnguard.voice.shop import CodebookStale
    from churnguard.voice.surges import NoTextsError, VoiceError
    from churnguard.store import StoreBusyError, StoreError
    from churnguard.assistant import DecisionError, TicketNotOpenError, UnknownTemplateError

    return {c.__name__: c for c in (
        DecisionError, TicketNotOpenError, UnknownTemplateError,
        ConfigError, UnknownCustomerError, ErasureError, BacktestError, FeatureError, IngestError,
        DeliveryError, MeasurementError, PlanError, UpliftError, LabelError, MonitorError,
        RegistryError, ReportError, ScoringError, SettingsError, StoreError, StoreBusyError,
        CodebookStale, NoTextsError, VoiceError)}


def test_every_domain_error_has_the_one_base_and_its_own_code() -> None:
    from churnguard.errors import ChurnguardError, exit_code

    classes = _domain_classes()
    assert all(issubclass(c, ChurnguardError) for c in classes.values())
    codes = [c.code for c in classes.values()]
    assert len(set(codes)) == len(codes)
    # The CLI's exit codes as they were before the base: 1 for these, 2 for the rest.
    failures = {"ErasureError", "FeatureError", "StoreError"}
    for name, cls in classes.items():
        assert exit_code(cls("x")) == (1 if name in failures else 2), name


def test_every_domain_answer_is_a_documented_api_code() -> None:
    from churnguard.service.errors import CODES, DOMAIN_ANSWERS

    assert {code for code, _ in DOMAIN_ANSWERS.values()} <= set(CODES)
    known = {c.code for c in _domain_classes().values()}
    assert set(DOMAIN_ANSWERS) <= known
