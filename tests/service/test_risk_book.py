"""The risk book: which answers may be served from memory, and when they must be recomputed."""

from __future__ import annotations

import datetime as dt

from churnguard.realtime import CustomerRisk
from churnguard.service.risk import RiskBook

NOW = dt.datetime(2026, 2, 25)


def risk(user: str, *, reasons: dict | None = None) -> CustomerRisk:
    return CustomerRisk(user_id=user, as_of=NOW, model_version="v1", status="active",
                        p_churn=0.5, risk_tier="medium", reasons=reasons or {})


def test_answers_without_reasons_are_computed_until_filled() -> None:
    book = RiskBook()
    assert book.lookup("a") == ("miss", None)  # nothing installed yet
    ticket = book.ticket()
    assert book.install({"a": risk("a"), "b": risk("b")}, {"a", "b", "c"}, as_of=NOW,
                        version="v1", ticket=ticket)
    assert book.lookup("a") == ("miss", None) and book.reasons_progress == 0.0
    assert book.fill({"a": {"en": ("why",)}}, ticket)
    state, found = book.lookup("a")
    assert state == "hit" and found.reasons == {"en": ("why",)}
    assert book.reasons_progress == 0.5
    assert book.lookup("c")[0] == "lapsed" and book.lookup("zz") == ("unknown", None)


def test_a_mark_after_the_read_wins_over_what_that_read_computed() -> None:
    book = RiskBook()
    ticket = book.ticket()
    book.install({"a": risk("a"), "b": risk("b")}, {"a", "b"}, as_of=NOW, version="v1",
                 ticket=ticket)
    book.mark(["a"])  # new events for a, after the population was read
    book.fill({"a": {"en": ("old",)}, "b": {"en": ("ok",)}}, ticket)
    assert book.lookup("a") == ("miss", None)
    assert book.lookup("b")[0] == "hit"
    # An answer computed from a read begun before a newer mark is not kept either.
    early = book.ticket()
    book.mark(["b"])
    book.keep(risk("b", reasons={"en": ("stale",)}), early)
    assert book.lookup("b") == ("miss", None)
    late = book.ticket()
    book.keep(risk("b", reasons={"en": ("fresh",)}), late)
    assert book.lookup("b")[1].reasons == {"en": ("fresh",)}


def test_a_new_champion_voids_everything_and_stale_fills_are_refused() -> None:
    book = RiskBook()
    ticket = book.ticket()
    book.install({"a": risk("a", reasons={"en": ("x",)})}, {"a"}, as_of=NOW, version="v1",
                 ticket=ticket)
    book.void()
    assert book.lookup("a") == ("miss", None) and book.reasons_progress is None
    assert not book.fill({"a": {"en": ("y",)}}, ticket)
    assert not book.install({"a": risk("a")}, {"a"}, as_of=NOW, version="v1", ticket=ticket)


def test_a_swapped_in_champion_replaces_every_answer_at_once() -> None:
    """A cycle's new champion: the old answers stand until the new ones, reasons and all, are
    swapped in together; a mark after the new read still wins; older answers are not kept."""
    book = RiskBook()
    first = book.ticket()
    book.install({"a": risk("a", reasons={"en": ("old",)}), "b": risk("b")}, {"a", "b", "c"},
                 as_of=NOW, version="v1", ticket=first)
    early = book.ticket()  # an on-the-spot answer begun before the swap
    ticket = book.ticket()  # the read the new champion's answers come from
    assert book.lookup("a")[1].model_version == "v1"  # standing while v2 is computed
    book.mark(["b"])  # new events for b after that read
    new = {u: CustomerRisk(user_id=u, as_of=NOW, model_version="v2", status="active",
                           p_churn=0.25, risk_tier="low", reasons={"en": ("new",)})
           for u in ("a", "b")}
    assert book.swap(new, {"a", "b", "c"}, as_of=NOW, version="v2", ticket=ticket)
    state, found = book.lookup("a")
    assert state == "hit" and found.model_version == "v2" and found.reasons == {"en": ("new",)}
    assert book.lookup("b") == ("miss", None)  # its mark is newer than the swapped-in read
    assert book.lookup("c")[0] == "lapsed" and book.reasons_progress == 1.0
    book.keep(risk("a", reasons={"en": ("v1 answer",)}), early)  # computed before: refused
    assert book.lookup("a")[1].model_version == "v2"
    # A champion change after the read (an API promotion voids): that swap is refused.
    late = book.ticket()
    book.void()
    assert not book.swap(new, {"a", "b"}, as_of=NOW, version="v2", ticket=late)
    assert book.lookup("a") == ("miss", None)
