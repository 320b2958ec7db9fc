"""The resolved tickets most similar to an open one, found within the open ticket's language.

Each text goes by its majority script (:func:`churnguard.text.language.chinese_majority`):
mostly Chinese texts through the shop's character n-gram encoder, the rest through MiniLM
(:class:`churnguard.text.TextEncoder`). The two are different vector spaces, so an open ticket
is compared only with resolved tickets of its own route, by cosine similarity of unit vectors.

The vectors of the resolved tickets are computed once per store content (keyed by
:func:`~churnguard.assistant.tickets.fingerprint` and the encoder) and kept in memory, so a
second question about the same store costs one encoding.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from churnguard.assistant.tickets import ResolvedTicket, fingerprint, resolved_tickets
from churnguard.store import Store
from churnguard.text import TextEncoder, shop_text_encoder
from churnguard.text.language import chinese_majority

__all__ = ["Match", "TicketIndex", "route_of", "ticket_index"]

_CACHE: OrderedDict[tuple, TicketIndex] = OrderedDict()
_CACHE_SIZE = 4
_LOCK = threading.Lock()


def route_of(text: str | None) -> str:
    """``zh`` for a mostly Chinese text, else ``en``: the encoder, and the reply's language.

    >>> route_of("包裹延误了 so bad"), route_of("Where is my parcel? 谢谢")
    ('zh', 'en')
    """
    return "zh" if bool(chinese_majority([text or ""])[0]) else "en"


@dataclass(frozen=True, kw_only=True)
class Match:
    ticket: ResolvedTicket
    similarity: float


# With fewer resolved tickets than this in a route, its threshold is FALLBACK_THRESHOLD's: the
# 5th percentile of the best similarity of held-out tickets on a 5,000-customer simulated shop
# (benchmarks/RESULTS.md "assistant").
MIN_FOR_THRESHOLD = 20
FALLBACK_THRESHOLD = {"en": 0.75, "zh": 0.70}
_LOO_SAMPLE = 2000  # tickets whose nearest neighbour sets the threshold (a seeded sample)


class TicketIndex:
    """Resolved tickets and their unit vectors, per route."""

    def __init__(self, tickets: list[ResolvedTicket], encoder: TextEncoder) -> None:
        self.encoder = encoder
        routes = np.array([route_of(t.text) for t in tickets])
        self.tickets: dict[str, list[ResolvedTicket]] = {}
        self.vectors: dict[str, np.ndarray] = {}
        for route in ("en", "zh"):
            mine = [t for t, r in zip(tickets, routes) if r == route]
            self.tickets[route] = mine
            self.vectors[route] = (encoder.encode([t.text for t in mine]) if mine
                                   else np.zeros((0, 1), np.float32))

    def threshold(self, route: str, answer_share: float) -> float:
        """The similarity that ``answer_share`` of the route's resolved tickets reach to their
        most similar other resolved ticket (leave-one-out; a seeded sample of at most
        :data:`_LOO_SAMPLE`); :data:`FALLBACK_THRESHOLD` with fewer than
        :data:`MIN_FOR_THRESHOLD` of them."""
        vectors = self.vectors[route]
        n = len(self.tickets[route])
        if n < MIN_FOR_THRESHOLD:
            return FALLBACK_THRESHOLD[route]
        rows = np.arange(n)
        if n > _LOO_SAMPLE:
            rows = np.sort(np.random.default_rng(0).choice(n, _LOO_SAMPLE, replace=False))
        sims = vectors[rows] @ vectors.T
        sims[np.arange(rows.size), rows] = -np.inf  # not itself
        return float(np.quantile(sims.max(axis=1), 1.0 - answer_share))

    def __len__(self) -> int:
        return sum(len(v) for v in self.tickets.values())

    def similar(self, text: str, *, k: int, exclude: frozenset[str] = frozenset()
                ) -> list[Match]:
        """The ``k`` most similar resolved tickets of the text's route, most similar first
        (ties by ticket id), leaving out the tickets in ``exclude``."""
        route = route_of(text)
        tickets = self.tickets[route]
        if not tickets:
            return []
        query = self.encoder.encode([text])[0]
        sims = self.vectors[route] @ query
        order = sorted(range(len(tickets)), key=lambda j: (-float(sims[j]), tickets[j].ticket_id))
        out = []
        for j in order:
            if tickets[j].ticket_id in exclude:
                continue
            out.append(Match(ticket=tickets[j], similarity=float(sims[j])))
            if len(out) == k:
                break
        return out


def ticket_index(store: Store) -> TicketIndex:
    """The store's index of resolved tickets (built on first use, rebuilt when tickets or
    resolutions change)."""
    encoder = shop_text_encoder(store)
    key = (str(store.path) if store.path is not None else id(store.con), encoder.key,
           fingerprint(store))
    with _LOCK:
        found = _CACHE.get(key)
        if found is not None:
            _CACHE.move_to_end(key)
            return found
    index = TicketIndex(resolved_tickets(store), encoder)
    with _LOCK:
        _CACHE[key] = index
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return index
