"""The recommended action per customer: the newest campaign plan that includes them.

Read from ``plan_rows`` once and kept in memory (a query per request would cost more than the
rest of the risk answer). Whoever stores or changes a plan through the service, and the service
when a command gives the store back, calls :meth:`Recommendations.refresh` with the store in
hand: the actions are read afresh and replace those held, which stand until then, so a risk
answer known in memory never waits for the store. Emptying them instead
(:meth:`Recommendations.invalidate`, the fallback when the read fails) sends every risk request
to the store until one of them reloads them: after a scheduled cycle, with the background
rescoring holding the interpreter, that queued every request for up to 21 s
(benchmarks/RESULTS.md, "cycle_serve"). A customer in the plan's control group gets no action:
acting on a control customer would spoil the campaign's measurement.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from churnguard.store import Store

log = logging.getLogger("churnguard.service")

_NEWEST = """
SELECT user_id, campaign_id, action, channel, message_en, message_zh, is_control
FROM (SELECT r.user_id, r.campaign_id, r.action, r.channel, r.message_en, r.message_zh,
             r.is_control,
             row_number() OVER (PARTITION BY r.user_id
                                ORDER BY p.created_at DESC, r.campaign_id) AS newest
      FROM plan_rows r JOIN plans p USING (campaign_id))
WHERE newest = 1
"""


@dataclass(frozen=True, kw_only=True, slots=True)
class Recommendation:
    campaign_id: str
    action: str
    channel: str | None
    messages: dict[str, str | None]


class Recommendations:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # One load at a time: after an invalidation every request that finds nothing loaded
        # asks for a load; they wait for one instead of each running the query (at 200
        # requests a second that herd stalled answers for seconds; RESULTS.md, "cycle").
        self._load_lock = threading.Lock()
        self._generation = 0  # bumped by invalidate: a load begun before is not installed
        self._by_user: dict[str, Recommendation | None] | None = None

    @property
    def loaded(self) -> bool:
        return self._by_user is not None

    def load(self, store: Store) -> None:
        with self._load_lock:
            if self._by_user is not None:
                return  # another request loaded them while this one waited
            self._load(store)

    def _load(self, store: Store) -> None:
        with self._lock:
            generation = self._generation
        rows = store.con.execute(_NEWEST).fetchall()
        by_user: dict[str, Recommendation | None] = {}
        for user, campaign, action, channel, message_en, message_zh, is_control in rows:
            if is_control or action in (None, "", "none"):
                by_user[user] = None
            else:
                by_user[user] = Recommendation(campaign_id=campaign, action=action,
                                               channel=channel,
                                               messages={"en": message_en, "zh": message_zh})
        with self._lock:
            if generation == self._generation:
                self._by_user = by_user

    def refresh(self, store: Store) -> bool:
        """Read the actions afresh from ``store`` and replace those held (they stand until
        then); False when the read failed: then they are emptied (:meth:`invalidate`), so the
        next risk request reads them, and the failure is logged."""
        with self._lock:
            self._generation += 1  # a load begun before read older plans: it is not installed
        try:
            with self._load_lock:
                self._load(store)
        except Exception:  # noqa: BLE001 - the plan is stored; the answers read it on demand
            log.exception("reading the recommended actions failed; the next risk request "
                          "reads them")
            self.invalidate()
            return False
        return True

    def get(self, user_id: str) -> Recommendation | None:
        with self._lock:
            return None if self._by_user is None else self._by_user.get(user_id)

    def invalidate(self) -> None:
        with self._lock:
            self._generation += 1
            self._by_user = None

    def forget(self, user_id: str) -> None:
        with self._lock:
            if self._by_user is not None:
                self._by_user.pop(user_id, None)
