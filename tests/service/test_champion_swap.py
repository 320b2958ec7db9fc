"""A champion replaced by a cycle or a command (RiskService.champion_replaced): the previous
champion's answers stand while the new one scores and explains everyone in the background, then
every answer changes at once, reasons included; nobody is answered on the spot meanwhile."""

from __future__ import annotations

import threading
import time

from churnguard.registry import CHAMPION, alias_version, list_models, set_alias

from service.helpers import READ, ClientFactory, headers


def test_a_replaced_champion_is_swapped_in_whole(make_client: ClientFactory) -> None:
    client = make_client()
    risk = client.app.state.service.risk
    pool = client.app.state.service.pool
    with pool.writing() as store:
        old = alias_version(store, CHAMPION)
        new = next(m.version for m in list_models(store) if m.version != old)
        ids = [u for (u,) in store.con.execute(
            "SELECT DISTINCT user_id FROM events ORDER BY user_id").fetchall()]
        set_alias(store, CHAMPION, new, reason="a cycle's gate promoted it")
    users = [u for u in ids if risk.cached(u)[0] == "hit"
             and risk.cached(u)[1].status == "active"][:5]
    assert len(users) == 5
    computed: list[str] = []
    compute = risk.compute
    risk.compute = lambda store, ids: computed.extend(ids) or compute(store, ids)
    go, swapping = threading.Event(), threading.Event()
    rebuild = risk.rebuild

    def held() -> bool:
        swapping.set()
        assert go.wait(120)
        return rebuild()

    risk.rebuild = held
    try:
        risk.champion_replaced()
        assert swapping.wait(30)
        for user in users:  # the previous champion's answers stand, from memory
            answer = client.get(f"/v1/users/{user}/risk", headers=headers(READ)).json()
            assert answer["model_version"] == old and answer["reasons"]
    finally:
        go.set()
    deadline = time.monotonic() + 120
    while risk.book.table_version != new:
        assert time.monotonic() < deadline, "the new champion was never swapped in"
        time.sleep(0.05)
    assert risk.book.reasons_progress == 1.0  # everyone's reasons came with the swap
    for user in users:
        answer = client.get(f"/v1/users/{user}/risk", headers=headers(READ)).json()
        assert answer["model_version"] == new
    assert computed == []  # not one answer was computed on the spot
