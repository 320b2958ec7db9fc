"""The recommended actions the risk answers carry are loaded once after an invalidation, however
many requests ask at the same time."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from churnguard.service.recommendations import Recommendations


class _SlowStore:
    """A store whose plan query takes a while and is counted."""

    def __init__(self) -> None:
        self.queries = 0
        self.release = threading.Event()
        self.con = SimpleNamespace(execute=self._execute)

    def _execute(self, sql: str) -> SimpleNamespace:
        self.queries += 1
        assert self.release.wait(30)
        return SimpleNamespace(fetchall=lambda: [
            ("u1", "c1", "coupon_10", "email", "hi", "你好", False)])


def test_requests_that_find_nothing_loaded_wait_for_one_load() -> None:
    recommendations, store = Recommendations(), _SlowStore()
    threads = [threading.Thread(target=recommendations.load, args=(store,)) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(0.2)  # every thread is in load() by now
    store.release.set()
    for t in threads:
        t.join(30)
    assert store.queries == 1
    assert recommendations.get("u1").campaign_id == "c1"


def test_a_load_begun_before_an_invalidation_is_not_installed() -> None:
    recommendations, store = Recommendations(), _SlowStore()
    loader = threading.Thread(target=recommendations.load, args=(store,))
    loader.start()
    time.sleep(0.2)
    recommendations.invalidate()  # a new plan arrived while the old ones were read
    store.release.set()
    loader.join(30)
    assert not recommendations.loaded
    recommendations.load(store)
    assert recommendations.loaded and store.queries == 2
