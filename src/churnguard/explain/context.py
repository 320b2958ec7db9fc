""":func:`~churnguard.explain.reason_context` computed from a few customers' events in memory.

The real-time path (churnguard.realtime) answers for one customer at a time; the context query
costs DuckDB ~20 ms to plan whatever the data's size, this a fraction of a millisecond. The rules
are those of the query in explain/queries.py (the latest rated review, else the latest review,
ties on ts broken by event_id; order days as UTC days; tickets closed by session id, then FIFO),
and tests/features/test_feature_frame.py requires the two frames equal. The review's topic comes
from the query's own SQL expression (``topic_of``), so the two can never read a text apart.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from churnguard.explain.queries import CONTEXT_COLUMNS
from churnguard.features.frame import DAY_US, EventArrays, _index, _open_tickets, cutoff_us

_EPOCH = np.datetime64("1970-01-01T00:00:00", "us")


def _at(ts_us: int | None) -> np.datetime64:
    return np.datetime64("NaT", "us") if ts_us is None else _EPOCH + np.timedelta64(ts_us, "us")


def _row(ev: EventArrays, rows: np.ndarray, cut: int,
         topic_of: Callable[[str | None], str]) -> dict[str, object]:
    rows = ev.before(rows, cut)
    kinds = ev.type[rows]
    out: dict[str, object] = {c: None for c in CONTEXT_COLUMNS}
    reviews = rows[kinds == "review"].tolist()
    if reviews:
        last = max(reviews, key=lambda i: (not np.isnan(ev.rating[i]), ev.ts[i], ev.event_id[i]))
        out |= {"last_review_at": int(ev.ts[last]), "last_review_rating": float(ev.rating[last]),
                "last_review_topic": topic_of(ev.text[last])}
    orders = ev.ts[rows[kinds == "order"]]
    if orders.size:
        days = np.unique(np.floor_divide(orders, DAY_US))
        newest = int(orders.max())
        out |= {"last_order_at": newest, "order_days": float(days.size),
                "usual_order_gap_days": int(days[-1] - days[0]) / (days.size - 1)
                if days.size > 1 else None,
                "days_since_order": (cut - newest) / 86400e6}
    still_open = _open_tickets(ev, rows[np.isin(kinds, ["support_ticket", "ticket_resolved"])])
    if still_open.size:
        out["oldest_open_ticket_at"] = int(ev.ts[still_open].min())
    return out


def context_of_events(ev: EventArrays, population: Sequence[tuple[str, dt.datetime]], *,
                      topic_of: Callable[[str | None], str]) -> pd.DataFrame:
    """What :func:`~churnguard.explain.reason_context` returns for these (user_id, cutoff) rows,
    from the events in ``ev`` (each user's complete history). ``topic_of``: a review text's
    topic (:func:`~churnguard.explain.queries.review_topics`)."""
    keys = sorted({(str(u), pd.Timestamp(c).as_unit("us")) for u, c in population})
    rows = [_row(ev, ev.rows_of(u), cutoff_us(c), topic_of) for u, c in keys]
    index = _index(keys)
    data: dict[str, object] = {}
    for column in CONTEXT_COLUMNS:
        values = [r[column] for r in rows]
        if column.endswith("_at"):
            data[column] = np.array([_at(v) for v in values], dtype="datetime64[us]")
        elif column == "last_review_topic":
            # as the query's frame: NaN where there is no review
            data[column] = pd.Series([np.nan if v is None else v for v in values],
                                     dtype=object, index=index)
        else:
            data[column] = np.array([np.nan if v is None else v for v in values], dtype=float)
    frame = pd.DataFrame(data, index=index, columns=list(CONTEXT_COLUMNS))
    frame["last_review_topic"] = frame["last_review_topic"].astype(object)
    return frame


__all__ = ["context_of_events"]
