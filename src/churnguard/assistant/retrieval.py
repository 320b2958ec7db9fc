"""The resolved tickets most similar to an open one, found within the open ticket's language.

Each text goes by its majority script (:func:`churnguard.text.language.chinese_majority`):
the route ``zh`` for mostly Chinese texts, ``en`` for the rest. An open ticket is compared only
with resolved tickets of its own route (their replies are in its language), by cosine
similarity of unit vectors, each route through its own encoder (``[assistant] encoder_en`` and
``encoder_zh``, one of :data:`RETRIEVAL_ENCODERS`):

- ``use``: the multilingual Universal Sentence Encoder (:mod:`churnguard.text.use`), nothing
  fitted; the default of ``zh``;
- ``bilingual``: MiniLM for ``en`` (its default), the shop's character n-gram encoder for ``zh``
  (:func:`churnguard.text.shop_text_encoder`).

The defaults are the better of each route on tickets written with sentences the base never saw
(benchmarks/RESULTS.md "assistant", docs/assistant.md): in Chinese, hit@3 0.50 with the
character n-grams and 0.84 with USE (the worst of 3 splits, ticket texts only); in English 0.92
with MiniLM and 0.90 with USE.

A resolved ticket is two texts: what the customer wrote and the reply that resolved it, which
says what was wrong and what was done ("the parcel was redirected to the correct address"). The
similarity of an open ticket to a resolved one blends both (``[assistant] reply_weight``, w)::

    similarity = (1 - w) * cos(open ticket, resolved ticket) + w * cos(open ticket, its reply)

so a complaint worded like no resolved ticket still finds the tickets whose replies answer it
(hit@3 on unseen sentences, the worst of 3 splits: 0.915 in Chinese with USE, 0.957 in English
with MiniLM, from 0.842 and 0.918 with the ticket texts alone).
Replies are written with care (no typos, no mixed language) and each says its case plainly, so
they generalise to new wordings better than the customers' own texts. ``w = 0`` is the ticket
text alone (the method before). The default, :data:`REPLY_WEIGHT`, was chosen on nested splits
inside the benchmark's retrieval bases, never on its test queries (docs/assistant.md).

The blend ranks; it does not decide whether to answer. The abstain threshold is compared with the
cosine of the nearest resolved ticket *text* (:attr:`Lookup.best_text_similarity`,
:meth:`TicketIndex.threshold`), exactly as before: blended with replies, whose wording every
ticket of a topic shares, the similarities crowd together and a remark about nothing a ticket is
about would get through far more often (measured: docs/assistant.md, "The abstain threshold").

The vectors of the resolved tickets and of their replies are computed once per store content (keyed by
:func:`~churnguard.assistant.tickets.fingerprint` and the encoders) and kept in memory, so a
second question about the same store costs one encoding.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from churnguard.assistant.tickets import ResolvedTicket, fingerprint, resolved_tickets
from churnguard.config import AssistantConfig
from churnguard.store import Store
from churnguard.text import TextEncoder, shop_text_encoder
from churnguard.text.language import chinese_majority

__all__ = ["FALLBACK_THRESHOLD", "REPLY_WEIGHT", "RETRIEVAL_ENCODERS", "ROUTES", "Lookup",
           "Match", "TicketIndex", "DEFAULT_ENCODERS", "route_encoders", "route_of",
           "ticket_index"]

ROUTES = ("en", "zh")
RETRIEVAL_ENCODERS = ("use", "bilingual")
# The weight of the reply in a resolved ticket's similarity (``[assistant] reply_weight``): the
# pick of nested held-out phrasings inside the benchmark's bases (benchmarks/RESULTS.md
# "assistant"; docs/assistant.md), the same for both routes.
REPLY_WEIGHT = AssistantConfig().reply_weight

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
    similarity: float  # the blend of the ticket's and its reply's (see the module's docstring)
    text_similarity: float  # the cosine to the ticket's text alone


# With fewer resolved tickets than this in a route, its threshold is FALLBACK_THRESHOLD's for the
# route and its encoder: the 5th percentile of the best similarity of held-out tickets on a
# 5,000-customer simulated shop, rounded down to 0.05 (benchmarks/RESULTS.md "assistant").
MIN_FOR_THRESHOLD = 20
FALLBACK_THRESHOLD = {("en", "use"): 0.65, ("zh", "use"): 0.70,
                      ("en", "bilingual"): 0.75, ("zh", "bilingual"): 0.70}
_LOO_SAMPLE = 2000  # tickets whose nearest neighbour sets the threshold (a seeded sample)


def route_encoders(store: Store, choices: Mapping[str, str]) -> dict[str, TextEncoder]:
    """The encoder of each route for ``choices`` (route → one of :data:`RETRIEVAL_ENCODERS`):
    ``use`` the multilingual USE, ``bilingual`` the store's MiniLM + character n-gram encoder.

    >>> route_encoders(Store.in_memory(), {"en": "bilingual", "zh": "use"})["zh"].key
    'use-m3'
    >>> route_encoders(Store.in_memory(), {"en": "bert", "zh": "use"})
    Traceback (most recent call last):
    ...
    ValueError: unknown retrieval encoder 'bert' for route en; one of use, bilingual
    """
    out = {}
    for route in ROUTES:
        choice = choices[route]
        if choice not in RETRIEVAL_ENCODERS:
            raise ValueError(f"unknown retrieval encoder {choice!r} for route {route}; one of "
                             f"{', '.join(RETRIEVAL_ENCODERS)}")
        out[route] = shop_text_encoder(store, choice)
    return out


def _choice(encoder: TextEncoder) -> str:
    return "use" if encoder.use else "bilingual"


def _check_weight(reply_weight: float) -> float:
    if not 0.0 <= reply_weight <= 1.0:
        raise ValueError(f"reply_weight must be between 0 and 1, got {reply_weight!r}")
    return float(reply_weight)


@dataclass(frozen=True, kw_only=True)
class Lookup:
    """What an open ticket finds: the most similar resolved tickets (by the blend) and the
    cosine of its nearest resolved ticket text (what the abstain threshold is compared with;
    None when the route has no resolved ticket)."""

    matches: list[Match]
    best_text_similarity: float | None


class TicketIndex:
    """Resolved tickets, the unit vectors of their texts and of their replies, per route, each
    route through its encoder (``encoders``: route → :class:`~churnguard.text.TextEncoder`, or
    one for both)."""

    def __init__(self, tickets: list[ResolvedTicket],
                 encoders: TextEncoder | Mapping[str, TextEncoder]) -> None:
        if isinstance(encoders, TextEncoder):
            encoders = dict.fromkeys(ROUTES, encoders)
        self.encoders: dict[str, TextEncoder] = {route: encoders[route] for route in ROUTES}
        routes = np.array([route_of(t.text) for t in tickets])
        self.tickets: dict[str, list[ResolvedTicket]] = {}
        self.vectors: dict[str, np.ndarray] = {}
        self.reply_vectors: dict[str, np.ndarray] = {}
        for route in ROUTES:
            mine = [t for t, r in zip(tickets, routes) if r == route]
            self.tickets[route] = mine
            encode = self.encoders[route].encode
            self.vectors[route] = (encode([t.text for t in mine]) if mine
                                   else np.zeros((0, 1), np.float32))
            self.reply_vectors[route] = (encode([t.reply for t in mine]) if mine
                                         else np.zeros((0, 1), np.float32))

    def similarities(self, route: str, queries: np.ndarray,
                     reply_weight: float = REPLY_WEIGHT) -> np.ndarray:
        """(n queries, n resolved tickets of the route): ``(1 - w)`` times the cosine to each
        ticket's text plus ``w`` times the cosine to its reply (``queries``: unit vectors of the
        route's encoder)."""
        w = _check_weight(reply_weight)
        sims = self.vectors[route] @ queries.T
        if w > 0.0:
            sims = (1.0 - w) * sims + w * (self.reply_vectors[route] @ queries.T)
        return sims.T

    def threshold(self, route: str, answer_share: float) -> float:
        """The cosine that ``answer_share`` of the route's resolved tickets reach to their most
        similar other resolved ticket's text (leave-one-out; a seeded sample of at most
        :data:`_LOO_SAMPLE`); :data:`FALLBACK_THRESHOLD` of the route and its encoder with
        fewer than :data:`MIN_FOR_THRESHOLD` of them. Ticket texts only, whatever the reply
        weight: the abstain rule is compared with :attr:`Lookup.best_text_similarity`."""
        vectors = self.vectors[route]
        n = len(self.tickets[route])
        if n < MIN_FOR_THRESHOLD:
            return FALLBACK_THRESHOLD[(route, _choice(self.encoders[route]))]
        rows = np.arange(n)
        if n > _LOO_SAMPLE:
            rows = np.sort(np.random.default_rng(0).choice(n, _LOO_SAMPLE, replace=False))
        sims = vectors[rows] @ vectors.T
        sims[np.arange(rows.size), rows] = -np.inf  # not itself
        return float(np.quantile(sims.max(axis=1), 1.0 - answer_share))

    def __len__(self) -> int:
        return sum(len(v) for v in self.tickets.values())

    def lookup(self, text: str, *, k: int, exclude: frozenset[str] = frozenset(),
               reply_weight: float = REPLY_WEIGHT) -> Lookup:
        """The ``k`` most similar resolved tickets of the text's route (:meth:`similarities`),
        most similar first (ties by ticket id), leaving out the tickets in ``exclude``; and the
        best cosine to a resolved ticket's text (the tickets in ``exclude`` left out too)."""
        route = route_of(text)
        tickets = self.tickets[route]
        if not tickets:
            return Lookup(matches=[], best_text_similarity=None)
        query = self.encoders[route].encode([text])
        sims = self.similarities(route, query, reply_weight)[0]
        text_sims = self.vectors[route] @ query[0]
        kept = [j for j in range(len(tickets)) if tickets[j].ticket_id not in exclude]
        order = sorted(kept, key=lambda j: (-float(sims[j]), tickets[j].ticket_id))[:k]
        return Lookup(
            matches=[Match(ticket=tickets[j], similarity=float(sims[j]),
                           text_similarity=float(text_sims[j])) for j in order],
            best_text_similarity=max((float(text_sims[j]) for j in kept), default=None))

    def similar(self, text: str, *, k: int, exclude: frozenset[str] = frozenset(),
                reply_weight: float = REPLY_WEIGHT) -> list[Match]:
        """The matches of :meth:`lookup`."""
        return self.lookup(text, k=k, exclude=exclude, reply_weight=reply_weight).matches


DEFAULT_ENCODERS = {"en": AssistantConfig().encoder_en, "zh": AssistantConfig().encoder_zh}


def ticket_index(store: Store, encoders: Mapping[str, str] | None = None) -> TicketIndex:
    """The store's index of resolved tickets (built on first use, rebuilt when tickets or
    resolutions change); ``encoders``: route → one of :data:`RETRIEVAL_ENCODERS` (default
    :data:`DEFAULT_ENCODERS`, as ``[assistant]``'s)."""
    by_route = route_encoders(store, encoders or DEFAULT_ENCODERS)
    key = (str(store.path) if store.path is not None else id(store.con),
           tuple(by_route[r].key for r in ROUTES), fingerprint(store))
    with _LOCK:
        found = _CACHE.get(key)
        if found is not None:
            _CACHE.move_to_end(key)
            return found
    index = TicketIndex(resolved_tickets(store), by_route)
    with _LOCK:
        _CACHE[key] = index
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return index
