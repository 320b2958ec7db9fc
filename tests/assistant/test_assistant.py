"""The agents' assistant: ticket pairing, retrieval by language, slots filled only from the store,
abstention, and the decision log."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnguard import assistant
from churnguard.assistant.facts import slot_values
from churnguard.assistant.templates import TEMPLATES
from churnguard.config import AssistantConfig, ProjectConfig
from churnguard.erasure import customer_ids, erase_customer_rows
from churnguard.store import Store

CONFIG = ProjectConfig()
ACTIONS = CONFIG.intervene.actions


def _event(store: Store, event_id: str, user: str, ts: str, kind: str, text: str | None = None,
           session: str | None = None) -> None:
    store.con.execute("INSERT INTO events (event_id, user_id, ts, type, text, session_id, "
                      "batch_id) VALUES (?, ?, ?, ?, ?, ?, 'test')",
                      [event_id, user, ts, kind, text, session])


def _help(store: Store, user: str, ticket: str, config: AssistantConfig = CONFIG.assistant):
    return assistant.assist(store, user, ticket, config=config, actions=ACTIONS)


def test_a_resolution_closes_its_thread_else_the_oldest_open_ticket() -> None:
    store = Store.in_memory()
    _event(store, "t1", "u1", "2026-01-01", "support_ticket", "old, never answered")
    _event(store, "t2", "u1", "2026-01-02", "support_ticket", "late parcel", "k2")
    _event(store, "t3", "u1", "2026-01-03", "support_ticket", "broken item")
    _event(store, "r2", "u1", "2026-01-04", "ticket_resolved", "Redelivered.", "k2")
    _event(store, "r9", "u1", "2026-01-05", "ticket_resolved", "Answered.")  # no thread: FIFO
    _event(store, "t4", "u2", "2026-01-01", "support_ticket", "other customer")
    pairs = {(r.ticket_id, r.reply) for r in assistant.resolved_tickets(store)}
    assert pairs == {("t2", "Redelivered."), ("t1", "Answered.")}
    assert [t.ticket_id for t in assistant.open_tickets(store, "u1")] == ["t3"]
    assert [t.ticket_id for t in assistant.open_tickets(store, "u2")] == ["t4"]


def _open(sim: Path) -> pd.DataFrame:
    truth = pd.read_parquet(sim / "truth" / "tickets.parquet")
    events = pd.read_parquet(sim / "events.parquet", columns=["event_id", "text"])
    return truth[truth["status"] == "open"].merge(events, on="event_id")


def test_similar_tickets_come_from_the_tickets_language_with_their_replies(
        shop_store: Store, assist_shop: tuple[Path, Path]) -> None:
    truth = pd.read_parquet(assist_shop[1] / "truth" / "tickets.parquet")
    replies = dict(zip(truth["event_id"], truth["resolved_event_id"]))
    events = pd.read_parquet(assist_shop[1] / "events.parquet", columns=["event_id", "text"])
    text_of = dict(zip(events["event_id"], events["text"]))
    open_ = _open(assist_shop[1])
    routes = set()
    for row in open_.itertuples():
        help_ = _help(shop_store, row.user_id, row.event_id,
                      AssistantConfig(min_similarity_en=-1, min_similarity_zh=-1))
        assert help_.lang == assistant.route_of(row.text)
        assert len(help_.similar) == 3
        routes.add(help_.lang)
        for m in help_.similar:
            assert assistant.route_of(m.ticket.text) == help_.lang
            # the reply shown is the text of the resolution that closed that very ticket
            assert m.ticket.reply == text_of[replies[m.ticket.ticket_id]]
        sims = [m.similarity for m in help_.similar]
        assert sims == sorted(sims, reverse=True)
    assert routes == {"en", "zh"}


def _plan(store: Store, rows: list[tuple[str, str, bool]], delivered: dict[str, str]) -> None:
    store.con.execute("INSERT INTO plans VALUES ('p1', '2025-07-01', '2025-07-01', 10, "
                      "'planned', '{}', '{}')")
    for user, action, control in rows:
        store.con.execute("INSERT INTO plan_rows (campaign_id, user_id, action, is_control) "
                          "VALUES ('p1', ?, ?, ?)", [user, action, control])
        if user in delivered:
            store.con.execute("INSERT INTO deliveries VALUES ('p1', ?, ?, 'webhook', "
                              "'delivered', 1, 200, NULL, ?)", [user, f"k-{user}",
                                                                delivered[user]])


def _expected_values(sim: Path, row, offers: dict[str, tuple[str | None, str | None]]) -> dict:
    """The slots worked out from the simulator's files, independently of the library."""
    events = pd.read_parquet(sim / "events.parquet", columns=["event_id", "user_id", "ts", "type"])
    orders = events[(events["type"] == "order") & (events["user_id"] == row.user_id)
                    & (events["ts"] <= row.ts)].sort_values(["ts", "event_id"])
    last = orders.iloc[-1] if len(orders) else None
    offer, sent = offers.get(row.user_id, (None, None))
    return {"order_id": None if last is None else last["event_id"],
            "order_date": None if last is None else last["ts"].date().isoformat(),
            "offer": offer, "offer_sent_date": sent if offer else None}


def test_every_slot_is_filled_from_the_store_and_nothing_else(
        shop_store: Store, assist_shop: tuple[Path, Path]) -> None:
    sim = assist_shop[1]
    open_ = _open(sim)
    users = sorted(set(open_["user_id"]))
    assert len(users) >= 8
    # a delivered 10% coupon, a 5% coupon not delivered yet, a control row, a recommendation
    kinds = [("coupon_10", False), ("coupon_5", False), ("coupon_20", True), ("recommendation",
                                                                              False)]
    rows = [(u, *kinds[j % 4]) for j, u in enumerate(users[: 2 * len(kinds)])]
    delivered = {u: "2025-07-02 10:00:00" for u, a, _ in rows if a == "coupon_10"}
    _plan(shop_store, rows, delivered)
    phrase = {"en": "a 10% coupon for your next order", "zh": "一张10%的下单优惠券"}
    phrase5 = {"en": "a 5% coupon for your next order", "zh": "一张5%的下单优惠券"}
    checked = offers_used = 0
    for row in open_.itertuples():
        help_ = _help(shop_store, row.user_id, row.event_id,
                      AssistantConfig(min_similarity_en=-1, min_similarity_zh=-1))
        lang = help_.lang
        action = {u: a for u, a, c in rows if not c}.get(row.user_id)
        offers = {row.user_id: (phrase[lang], "2025-07-02")} if action == "coupon_10" else (
            {row.user_id: (phrase5[lang], None)} if action == "coupon_5" else {})
        values = _expected_values(sim, row, offers)
        assert slot_values(shop_store, row.user_id, ticket_at=help_.opened_at,
                           actions=ACTIONS)[lang] == values
        wanted = [t.id for t in TEMPLATES.values() if t.topic in (help_.topic, "any")
                  and all(values[s] is not None for s in t.slots)]
        shown = ([help_.recommendation] if help_.recommendation else []) + help_.alternatives
        assert [s.template_id for s in shown] == wanted
        for s in shown:
            template = TEMPLATES[s.template_id]
            assert s.text == template.text[lang].format(**{k: values[k] for k in template.slots})
            checked += 1
            offers_used += "offer" in template.slots
    assert checked > len(open_) and offers_used >= 1


def test_no_order_before_the_ticket_means_no_template_that_names_one(shop_store: Store) -> None:
    _event(shop_store, "t-new", "newcomer", "2025-06-01 10:00", "support_ticket",
           "My parcel is late, where is my delivery?")
    help_ = _help(shop_store, "newcomer", "t-new")
    assert not help_.abstained and help_.topic == "delivery"
    assert help_.recommendation is None and help_.alternatives == []


# Not complaints: nothing a resolved ticket is about (the simulator's own off-topic remarks are
# no good here: they ride along in some tickets).
@pytest.mark.parametrize("text", ["Could you recommend a good pancake recipe for Sunday?",
                                  "请问周末有读书会吗？想报名参加。"])
def test_abstains_when_nothing_resolved_is_similar_enough(shop_store: Store, text: str) -> None:
    _event(shop_store, "t-odd", "u0000001", "2025-06-01 10:00", "support_ticket", text)
    help_ = _help(shop_store, "u0000001", "t-odd")
    assert help_.abstained
    assert help_.top_similarity is not None and help_.top_similarity < help_.threshold
    assert help_.similar == [] and help_.recommendation is None and help_.topic is None
    # the threshold is what decides: with none, the same ticket gets its neighbours
    loose = _help(shop_store, "u0000001", "t-odd",
                  AssistantConfig(min_similarity_en=-1, min_similarity_zh=-1))
    assert not loose.abstained and len(loose.similar) == 3


def test_a_real_complaint_is_answered(shop_store: Store, assist_shop: tuple[Path, Path]) -> None:
    # The threshold lets 95% of the resolved tickets through (leave-one-out); the shop's 36 open
    # tickets are a small sample of the same kind: 32 answered when measured.
    open_ = _open(assist_shop[1])
    answered = [not _help(shop_store, r.user_id, r.event_id).abstained
                for r in open_.itertuples()]
    assert sum(answered) >= 0.8 * len(answered)


def test_the_threshold_is_chosen_from_the_stores_resolved_tickets(shop_store: Store) -> None:
    from churnguard.assistant.retrieval import FALLBACK_THRESHOLD, TicketIndex, ticket_index

    index = ticket_index(shop_store)
    for route in ("en", "zh"):
        v = index.vectors[route]
        sims = v @ v.T
        np.fill_diagonal(sims, -np.inf)
        best = sims.max(axis=1)
        chosen = index.threshold(route, 0.95)
        assert chosen == pytest.approx(float(np.quantile(best, 0.05)))
        assert 0.90 <= float(np.mean(best >= chosen)) <= 0.97
        assert index.threshold(route, 0.5) > chosen
    few = TicketIndex(index.tickets["en"][:5] + index.tickets["zh"][:5], index.encoders)
    # too few to choose from: the fallback of the route and its encoder (MiniLM for en, USE zh)
    assert few.threshold("en", 0.95) == FALLBACK_THRESHOLD[("en", "bilingual")] == 0.75
    assert few.threshold("zh", 0.95) == FALLBACK_THRESHOLD[("zh", "use")] == 0.70


def test_each_route_reads_through_its_configured_encoder(shop_store: Store) -> None:
    from churnguard.assistant.retrieval import ticket_index

    default = ticket_index(shop_store, {"en": CONFIG.assistant.encoder_en,
                                        "zh": CONFIG.assistant.encoder_zh})
    assert (default.encoders["en"].use, default.encoders["zh"].use) == (False, True)
    assert default.vectors["zh"].shape[1] == default.vectors["en"].shape[1] == 384
    old = ticket_index(shop_store, {"en": "bilingual", "zh": "bilingual"})
    assert old.encoders["zh"].key.startswith("minilm+zh:")  # the shop's character n-grams
    # the same tickets in each route, whatever the encoder
    assert [t.ticket_id for t in old.tickets["zh"]] == [t.ticket_id for t in
                                                         default.tickets["zh"]]
    help_ = _help(shop_store, *_first_open_zh(shop_store),
                  AssistantConfig(encoder_zh="bilingual", min_similarity_zh=-1))
    assert help_.lang == "zh" and len(help_.similar) == 3
    with pytest.raises(ValueError, match="unknown retrieval encoder 'bert' for route zh"):
        ticket_index(shop_store, {"en": "use", "zh": "bert"})


def _first_open_zh(store: Store) -> tuple[str, str]:
    rows = store.con.execute("SELECT user_id, event_id, text FROM events "
                             "WHERE type = 'support_ticket' ORDER BY ts, event_id").fetchall()
    for user, ticket, text in rows:
        if assistant.route_of(text) == "zh" and any(
                t.ticket_id == ticket for t in assistant.open_tickets(store, user)):
            return user, ticket
    raise AssertionError("the shop has no open Chinese ticket")


def test_the_chinese_route_finds_same_topic_tickets_for_sentences_it_never_saw() -> None:
    # The composer's Chinese tickets of four topics: the base is written only from 7 of the 10
    # topic sentences of each topic, the queries only from the other 3 (paraphrases the base
    # never holds). Measured hit@3: 0.93 through USE (the default); 0.84 through character
    # n-grams fitted on these very texts, 0.50 in the benchmark with the shop's own (they
    # match shared openers and closers, not meaning).
    from churnguard.assistant import ResolvedTicket
    from churnguard.assistant.retrieval import TicketIndex, route_encoders
    from churnguard.simulate.text import _bank

    texts, index, truth = _bank()
    held = {"7", "8", "9"}
    zh = [texts[i] for key, ids in index.items() if key[0] == "ticket" and key[3]
          for i in ids.tolist()]
    cores = {t: set(truth[t][4].split("+")) for t in zh}
    base = [ResolvedTicket(ticket_id=f"r{j}", user_id="u", opened_at=None, text=t,
                           resolved_at=None, reply="-")
            for j, t in enumerate(zh) if not cores[t] & held]
    queries = [t for t in zh if cores[t] <= held and t not in {b.text for b in base}]
    assert len(base) > 300 and len(queries) > 100
    topic = {b.ticket_id: truth[b.text][1] for b in base}
    encoders = route_encoders(Store.in_memory(), {"en": CONFIG.assistant.encoder_en,
                                                   "zh": CONFIG.assistant.encoder_zh})
    found = TicketIndex(base, encoders)
    hits = [any(topic[m.ticket.ticket_id] == truth[q][1] for m in found.similar(q, k=3))
            for q in queries]
    assert all(assistant.route_of(q) == "zh" for q in queries)
    assert np.mean(hits) >= 0.85, np.mean(hits)


def _composed_base(*, zh: bool, held: set[str]):
    """The composer's tickets of one language: a base of resolved tickets written from none of
    the ``held`` topic sentences, each with the reply the simulator writes for its topic (as
    the shop picks one per thread), and the texts written only from ``held`` as queries."""
    import zlib

    from churnguard.assistant import ResolvedTicket
    from churnguard.simulate.text import VARIANTS, _bank, compose_reply

    texts, index, truth = _bank()
    rows = [(texts[i], key[1]) for key, ids in index.items() if key[0] == "ticket"
            and key[3] == zh for i in ids.tolist()]
    cores = {t: set(truth[t][4].split("+")) for t, _ in rows}
    base = [ResolvedTicket(ticket_id=f"r{j}", user_id="u", opened_at=None, text=t,
                           resolved_at=None, reply=compose_reply(
                               topic=topic, zh=zh, variant=zlib.crc32(t.encode()) % VARIANTS))
            for j, (t, topic) in enumerate(rows) if not cores[t] & held]
    queries = [(t, truth[t][1]) for t, _ in rows if cores[t] <= held]
    return base, {b.ticket_id: truth[b.text][1] for b in base}, queries


@pytest.mark.parametrize("route", ["zh", pytest.param("en", marks=pytest.mark.slow)])
def test_a_complaint_worded_like_no_resolved_ticket_finds_the_tickets_whose_reply_answers_it(
        route: str) -> None:
    # Topic sentence 6 of every topic held out of the base (a wrong address; a device that will
    # not switch on; ...): no resolved ticket is worded like the queries. The replies say what
    # was done ("已帮您把包裹改到正确地址"), and the default blend finds the right topic where
    # the ticket texts alone do not. Measured hit@3, text alone -> default: zh 0.765 -> 0.877,
    # en 0.929 -> 1.000.
    from churnguard.assistant.retrieval import REPLY_WEIGHT, TicketIndex, route_encoders

    base, topic, queries = _composed_base(zh=route == "zh", held={"6"})
    assert len(base) > 800 and len(queries) > 60
    index = TicketIndex(base, route_encoders(Store.in_memory(), {
        "en": CONFIG.assistant.encoder_en, "zh": CONFIG.assistant.encoder_zh}))

    def hit_rate(weight: float) -> float:
        return float(np.mean([any(topic[m.ticket.ticket_id] == truth
                                  for m in index.similar(q, k=3, reply_weight=weight))
                              for q, truth in queries]))

    assert all(assistant.route_of(q) == route for q, _ in queries)
    assert CONFIG.assistant.reply_weight == REPLY_WEIGHT == 0.75
    blended, alone = hit_rate(REPLY_WEIGHT), hit_rate(0.0)
    assert blended >= 0.85 and blended >= alone + 0.05, (blended, alone)
    if route == "zh":  # the wrong address: the service's "wrong information" by text alone
        address = "地址写错了，能帮忙改一下吗？"
        assert topic[index.similar(address, k=1, reply_weight=0.0)[0].ticket.ticket_id] \
            == "service"
        assert {topic[m.ticket.ticket_id] for m in index.similar(address, k=3)} == {"delivery"}


def test_the_blend_ranks_and_the_ticket_text_decides_the_abstention(shop_store: Store) -> None:
    from churnguard.assistant.retrieval import ticket_index

    user, ticket = _first_open_zh(shop_store)
    index = ticket_index(shop_store)
    text = next(t.text for t in assistant.open_tickets(shop_store, user)
                if t.ticket_id == ticket)
    query = index.encoders["zh"].encode([text])[0]
    by_text = index.vectors["zh"] @ query
    by_reply = index.reply_vectors["zh"] @ query
    for weight in (0.0, 0.75, 1.0):
        help_ = _help(shop_store, user, ticket, AssistantConfig(reply_weight=weight,
                                                                min_similarity_zh=-1))
        for m in help_.similar:
            j = next(i for i, t in enumerate(index.tickets["zh"])
                     if t.ticket_id == m.ticket.ticket_id)
            assert m.text_similarity == pytest.approx(float(by_text[j]), abs=1e-5)
            assert m.similarity == pytest.approx(
                (1 - weight) * float(by_text[j]) + weight * float(by_reply[j]), abs=1e-5)
        blend = (1 - weight) * by_text + weight * by_reply
        assert [m.similarity for m in help_.similar] == pytest.approx(
            sorted(blend.tolist(), reverse=True)[:3], abs=1e-5)
        # whatever the weight: the nearest ticket text, against the ticket-text threshold
        assert help_.top_similarity == pytest.approx(float(by_text.max()), abs=1e-5)
        assert help_.threshold == -1
    strict = [_help(shop_store, user, ticket, AssistantConfig(
        reply_weight=w, min_similarity_zh=float(by_text.max()) + 1e-3)) for w in (0.0, 0.75)]
    assert all(h.abstained and h.similar == [] for h in strict)


@pytest.mark.parametrize("weight", [-0.1, 1.5])
def test_a_reply_weight_outside_0_to_1_is_refused(weight: float) -> None:
    from pydantic import ValidationError

    from churnguard.assistant.retrieval import TicketIndex

    with pytest.raises(ValidationError, match="reply_weight"):
        AssistantConfig(reply_weight=weight)
    index = TicketIndex([], assistant.retrieval.route_encoders(
        Store.in_memory(), {"en": "use", "zh": "use"}))
    with pytest.raises(ValueError, match=f"reply_weight must be between 0 and 1, got {weight}"):
        index.similarities("en", np.zeros((1, 384), np.float32), weight)


def test_decisions_are_logged_summarised_and_erased(shop_store: Store,
                                                    assist_shop: tuple[Path, Path]) -> None:
    open_ = _open(assist_shop[1])
    first, second = open_.iloc[0], open_.iloc[1]
    help_ = _help(shop_store, first.user_id, first.event_id)
    rec = help_.recommendation
    assert rec is not None

    def record(row, **kw):
        return assistant.record_decision(shop_store, row.user_id, row.event_id, agent="ana",
                                         config=CONFIG.assistant, actions=ACTIONS, **kw)

    accepted = record(first, decision="accepted", template_id=rec.template_id, text=None)
    assert accepted.sent_text == rec.text and accepted.lang == help_.lang
    edited = record(first, decision="edited", template_id=rec.template_id, text="My own words")
    rejected = record(second, decision="rejected", template_id=None, text=None)
    assert (edited.sent_text, rejected.sent_text) == ("My own words", None)
    logged = shop_store.con.execute(
        "SELECT user_id, ticket_id, decision, template_id, sent_text, agent, abstained "
        "FROM assist_log ORDER BY logged_at, assist_id").fetchall()
    assert sorted(logged) == sorted([
        (first.user_id, first.event_id, "accepted", rec.template_id, rec.text, "ana", False),
        (first.user_id, first.event_id, "edited", rec.template_id, "My own words", "ana", False),
        (second.user_id, second.event_id, "rejected", None, None, "ana",
         _help(shop_store, second.user_id, second.event_id).abstained)])
    usage = assistant.usage_summary(shop_store)
    assert usage.decisions == 3
    assert usage.by_decision == {"accepted": 1, "edited": 1, "rejected": 1}
    assert usage.acceptance_rate == pytest.approx(1 / 3)
    assert usage.by_template[rec.template_id] == {"accepted": 1, "edited": 1, "rejected": 0}
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert assistant.usage_summary(shop_store, since=later).decisions == 0
    # what cannot be logged as given
    for kw, says in ((dict(decision="accepted", template_id=None, text=None), "template_id"),
                     (dict(decision="edited", template_id=None, text=" "), "needs the text"),
                     (dict(decision="rejected", template_id=None, text="x"), "takes no text"),
                     (dict(decision="maybe", template_id=None, text=None), "one of"),
                     (dict(decision="accepted", template_id="nope", text=None), "unknown")):
        with pytest.raises(assistant.DecisionError if "unknown" not in says
                           else assistant.UnknownTemplateError, match=says):
            record(first, **kw)
    with pytest.raises(assistant.TicketNotOpenError):
        assistant.record_decision(shop_store, second.user_id, first.event_id, decision="rejected",
                                  template_id=None, text=None, agent=None,
                                  config=CONFIG.assistant, actions=ACTIONS)
    # the log names the customer: erased with them
    report = erase_customer_rows(shop_store, customer_ids(first.user_id))
    assert report.rows_deleted["assist_log"] == 2
    assert assistant.usage_summary(shop_store).decisions == 1


def test_a_template_that_cannot_be_filled_is_refused(shop_store: Store,
                                                    assist_shop: tuple[Path, Path]) -> None:
    row = _open(assist_shop[1]).iloc[0]
    with pytest.raises(assistant.DecisionError, match="cannot be filled"):
        assistant.record_decision(shop_store, row.user_id, row.event_id, decision="accepted",
                                  template_id="delivery_offer", text=None, agent=None,
                                  config=CONFIG.assistant, actions=ACTIONS)
