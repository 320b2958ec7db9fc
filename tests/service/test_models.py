"""Models: list, promote, roll back; the alias moves atomically and the history is kept."""

from __future__ import annotations

from service.helpers import ADMIN, READ, ClientFactory, error, headers


def test_promote_and_rollback_keep_the_history(make_client: ClientFactory) -> None:
    client = make_client()
    listed = client.get("/v1/models", headers=headers(READ)).json()
    versions = {m["name"]: m["version"] for m in listed["models"]}
    gbdt, recency = versions["gbdt"], versions["recency"]
    assert listed["champion"] == gbdt
    # Each version comes with the settings it was trained with.
    (trees,) = [m for m in listed["models"] if m["name"] == "gbdt"]
    assert (trees["config"]["model"]["n_estimators"], trees["config"]["model"]["n_jobs"]) == (60, 1)
    assert [m["is_champion"] for m in listed["models"]] == [m["version"] == gbdt
                                                            for m in listed["models"]]
    assert error(client.post("/v1/models/rollback", headers=headers(ADMIN))) == \
        (409, "no_previous_model")

    risk_before = client.get("/v1/users/u0000001/risk", headers=headers(READ)).json()
    promoted = client.post(f"/v1/models/{recency}/promote", headers=headers(ADMIN))
    assert promoted.json() == {"champion": recency, "previous": gbdt, "changed": True}
    again = client.post(f"/v1/models/{recency}/promote", headers=headers(ADMIN))
    assert again.json() == {"champion": recency, "previous": recency, "changed": False}
    # The next answer comes from the new champion.
    risk_now = client.get("/v1/users/u0000001/risk", headers=headers(READ)).json()
    assert (risk_before["model_version"], risk_now["model_version"]) == (gbdt, recency)

    rolled = client.post("/v1/models/rollback", headers=headers(ADMIN))
    assert rolled.json() == {"champion": gbdt, "previous": recency, "changed": True}
    assert client.get("/v1/users/u0000001/risk",
                      headers=headers(READ)).json()["model_version"] == gbdt
    assert error(client.post("/v1/models/rollback", headers=headers(ADMIN))) == \
        (409, "no_previous_model")

    history = client.get("/v1/models", headers=headers(READ)).json()["history"]
    assert [(h["version"], h["previous_version"], h["reason"]) for h in history] == [
        (gbdt, None, "first model"),
        (recency, gbdt, "promoted via the API"),
        (gbdt, recency, "rolled back via the API"),
    ]
