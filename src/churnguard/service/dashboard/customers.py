"""The at-risk customers (a sortable, filterable table with CSV export) and one customer's page.

The table is the newest scoring run (:func:`churnguard.score_runs.latest_run`), filtered and
sorted by DuckDB (:func:`churnguard.score_runs.at_risk`) and shown a page at a time; the export holds every row the filters
keep. A customer's page adds what is true now: the service's real-time risk (the same answer as
``GET /v1/users/{id}/risk``), the events, the scores over time and the newest plan's action and
message for them.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from churnguard import customers, score_runs
from churnguard.customers import PlannedContact, ScoreRow, Timeline, TimelineEvent, segments
from churnguard.files import csv_cell
from churnguard.realtime import CustomerRisk
from churnguard.score_runs import SORTS, TIERS, ScoringRun, latest_run
from churnguard.service.dashboard import charts
from churnguard.service.dashboard.assistant import render_panel
from churnguard.service.dashboard.i18n import event_name, t
from churnguard.service.dashboard.layout import (
    PageContext, cards, chart, count, day, e, minute, money, note, page, pct, probability, table,
    tier_badge)
from churnguard.service.state import ServiceState
from churnguard.store import Store

log = logging.getLogger("churnguard.service")

PAGE_SIZE = 50
TIMELINE_EVENTS = 400  # drawn on the timeline chart
EVENT_ROWS = 50  # listed in the table under it
MAX_TEXT = 100  # longest search or reason filter kept
# Spreadsheets run a cell that starts with one of these as a formula (CSV injection).


@dataclass(frozen=True, kw_only=True)
class Filters:
    tier: str | None = None
    segment: tuple[str, str] | None = None
    reason: str = ""
    q: str = ""
    sort: str = "p_churn"
    order: str = "desc"
    page: int = 1

    @classmethod
    def parse(cls, query: Mapping[str, str], known_segments: dict[str, list[str]]) -> Filters:
        """Filters from the query string; anything unknown falls back to the default."""
        tier = query.get("tier")
        segment = None
        name, sep, value = (query.get("segment") or "").partition("=")
        if sep and value in known_segments.get(name, ()):
            segment = (name, value)
        sort = query.get("sort", "p_churn")
        order = query.get("order", "desc")
        try:
            number = max(1, min(int(query.get("page", "1")), 1_000_000))
        except ValueError:
            number = 1
        return cls(tier=tier if tier in TIERS else None, segment=segment,
                   reason=(query.get("reason") or "").strip()[:MAX_TEXT],
                   q=(query.get("q") or "").strip()[:MAX_TEXT],
                   sort=sort if sort in SORTS else "p_churn",
                   order=order if order in ("asc", "desc") else "desc", page=number)

    def params(self, **changes: object) -> dict[str, object]:
        values = {"tier": self.tier, "segment": "=".join(self.segment) if self.segment else None,
                  "reason": self.reason, "q": self.q,
                  "sort": None if self.sort == "p_churn" else self.sort,
                  "order": None if self.order == "desc" else self.order,
                  "page": None if self.page == 1 else self.page}
        values.update(changes)
        return values


def _hashed(service: ServiceState, q: str) -> str | None:
    if not q or not service.project.config.ingest.pseudonymise:
        return None
    return service.stored_id(q)


def at_risk_rows(service: ServiceState, store: Store, filters: Filters, *,
                 limit: int | None, offset: int = 0) -> tuple[ScoringRun | None, list[dict]]:
    run = latest_run(store)
    if run is None:
        return None, []
    return run, score_runs.at_risk(
        store, run, horizon_days=service.project.config.churn.horizon_days, tier=filters.tier,
        segment=filters.segment, reason=filters.reason, q=filters.q,
        hashed_q=_hashed(service, filters.q), sort=filters.sort, order=filters.order,
        limit=limit, offset=offset)


def _sort_link(ctx: PageContext, filters: Filters, key: str, label: str) -> str:
    order = "asc" if (filters.sort == key and filters.order == "desc") else "desc"
    if filters.sort != key and key in ("user_id", "segment", "action"):
        order = "asc"
    arrow = ""
    if filters.sort == key:
        arrow = " ▼" if filters.order == "desc" else " ▲"
    url = ctx.url("/customers", **filters.params(sort=key, order=order, page=None))
    aria = (' aria-sort="descending"' if filters.order == "desc" else ' aria-sort="ascending"'
            ) if filters.sort == key else ""
    return f'<a class="sort" href="{e(url)}"{aria} data-sort="{e(key)}">{e(label)}{arrow}</a>'


def customer_url(ctx: PageContext, user_id: str) -> str:
    return ctx.url("/customers/" + quote(str(user_id), safe=""))


def _filter_form(ctx: PageContext, filters: Filters, known: dict[str, list[str]]) -> str:
    lang = ctx.lang
    tier_options = [f'<option value="">{e(t(lang, "filter_all_tiers"))}</option>'] + [
        f'<option value="{tier}"{" selected" if filters.tier == tier else ""}>'
        f'{e(t(lang, "tier_" + tier))}</option>' for tier in TIERS]
    segment_options = [f'<option value="">{e(t(lang, "filter_all_segments"))}</option>']
    for name, values in known.items():
        options = "".join(
            f'<option value="{e(name + "=" + v)}"'
            f'{" selected" if filters.segment == (name, v) else ""}>{e(v)}</option>'
            for v in values)
        segment_options.append(f'<optgroup label="{e(name)}">{options}</optgroup>')
    hidden = "".join(f'<input type="hidden" name="{k}" value="{e(v)}">'
                     for k, v in (("sort", filters.sort if filters.sort != "p_churn" else ""),
                                  ("order", filters.order if filters.order != "desc" else ""),
                                  ("lang", lang if lang != "en" else "")) if v)
    export = ctx.url("/customers.csv", **filters.params(page=None))
    tiers, groups = "".join(tier_options), "".join(segment_options)
    return f"""
<form class="filters" id="filters" method="get" action="/customers">
<label>{e(t(lang, 'filter_tier'))} <select name="tier" data-autosubmit>{tiers}</select></label>
<label>{e(t(lang, 'filter_segment'))}
 <select name="segment" data-autosubmit>{groups}</select></label>
<label>{e(t(lang, 'filter_reason'))} <input type="search" name="reason" value="{e(filters.reason)}"
 placeholder="{e(t(lang, 'filter_reason_placeholder'))}" maxlength="{MAX_TEXT}"></label>
<label>{e(t(lang, 'filter_search'))}
 <input type="search" name="q" id="search-id" value="{e(filters.q)}"
 placeholder="{e(t(lang, 'filter_search_placeholder'))}" maxlength="{MAX_TEXT}"></label>
{hidden}
<button type="submit">{e(t(lang, 'filter_apply'))}</button>
<a class="button secondary" href="{e(ctx.url('/customers'))}">{e(t(lang, 'filter_reset'))}</a>
<a class="button" id="export" href="{e(export)}" download>{e(t(lang, 'export_csv'))}</a>
</form>"""


def render_list(ctx: PageContext, service: ServiceState, store: Store,
                query: Mapping[str, str]) -> str:
    lang = ctx.lang
    title = t(lang, "customers_title")
    known = segments(store)
    filters = Filters.parse(query, known)
    run, rows = at_risk_rows(service, store, filters, limit=PAGE_SIZE,
                             offset=(filters.page - 1) * PAGE_SIZE)
    if run is None:
        return page(ctx, title=title, active="customers", body=note(e(t(lang, "no_scores"))))
    total = rows[0]["total"] if rows else 0
    days = service.project.config.churn.horizon_days
    headers = ["#", _sort_link(ctx, filters, "user_id", t(lang, "col_customer")),
               _sort_link(ctx, filters, "p_churn", t(lang, "col_p_churn")),
               _sort_link(ctx, filters, "risk_tier", t(lang, "col_tier")),
               _sort_link(ctx, filters, "revenue", t(lang, "col_revenue", days=days))]
    if filters.segment:
        headers.append(_sort_link(ctx, filters, "segment", filters.segment[0]))
    headers += [e(t(lang, "col_reasons")),
                _sort_link(ctx, filters, "action", t(lang, "col_action"))]
    body_rows = []
    first = (filters.page - 1) * PAGE_SIZE
    for i, r in enumerate(rows, start=first + 1):
        url = customer_url(ctx, r["user_id"])
        reasons = [x for x in (r["reason_1"], r["reason_2"], r["reason_3"]) if x]
        reason_html = (f'<span class="reason">{e(reasons[0])}</span>' if reasons else "—")
        reason_html += "".join(f'<span class="reason minor">{e(x)}</span>' for x in reasons[1:])
        action = r["action"]
        action_html = ("—" if action is None else
                       f'<span class="muted">{e(t(lang, "action_control"))}</span>'
                       if action == "control" else f"<code>{e(action)}</code>")
        segment = f'<td>{e(r["segment"])}</td>' if filters.segment else ""
        body_rows.append(
            f'<tr class="row-link" data-href="{e(url)}"><td class="num">{i}</td>'
            f'<td><a class="customer-link" href="{e(url)}">{e(r["user_id"])}</a></td>'
            f'<td class="num">{e(probability(r["p_churn"]))}</td>'
            f'<td>{tier_badge(r["risk_tier"], lang)}</td>'
            f'<td class="num">{money(r["revenue"])}</td>{segment}<td class="reasons">'
            f'{reason_html}</td><td>{action_html}</td></tr>')
    pages = max(1, -(-total // PAGE_SIZE))
    nav = []
    if filters.page > 1:
        previous = ctx.url("/customers", **filters.params(page=filters.page - 1))
        nav.append(f'<a rel="prev" href="{e(previous)}">← {e(t(lang, "page_prev"))}</a>')
    nav.append(f'<span>{e(t(lang, "page_of", page=filters.page, pages=pages))}</span>')
    if filters.page < pages:
        following = ctx.url("/customers", **filters.params(page=filters.page + 1))
        nav.append(f'<a rel="next" href="{e(following)}">{e(t(lang, "page_next"))} →</a>')
    shown = (t(lang, "shown_rows", first=count(first + 1), last=count(first + len(rows)),
               total=count(total)) if rows else t(lang, "shown_none"))
    about = f"{shown} · {t(lang, 'run_note', version=run.version, date=day(run.as_of))}"
    if run.lang != lang:
        about += " " + t(lang, "reasons_language", language=run.lang)
    body = f"""
{_filter_form(ctx, filters, known)}
<p class="muted" id="shown">{e(about)}</p>
{table(headers, body_rows, cls='at-risk', empty=e(t(lang, 'no_match')))}
<nav class="pager" aria-label="{e(t(lang, 'pages_label'))}">{''.join(nav)}</nav>
"""
    return page(ctx, title=title, active="customers", body=body,
                lead=e(t(lang, "customers_lead")))


def export_csv(service: ServiceState, store: Store, query: Mapping[str, str]) -> str | None:
    """Every row the filters keep, as CSV text (None: nothing has been scored)."""
    filters = Filters.parse(query, segments(store))
    run, rows = at_risk_rows(service, store, filters, limit=None)
    if run is None:
        return None
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = ["user_id", "p_churn", "risk_tier", "revenue", "reason_1", "reason_2", "reason_3",
               "action", "campaign_id"]
    if filters.segment:
        columns.insert(4, "segment")
    writer.writerow(columns + ["as_of", "model_version"])
    for r in rows:
        writer.writerow([csv_cell(r[c]) for c in columns] + [f"{run.as_of:%Y-%m-%d}", run.version])
    return out.getvalue()


# -- one customer ---------------------------------------------------------------------------------
def resolve(service: ServiceState, store: Store, user_id: str) -> str | None:
    """The id as the store holds it (:func:`churnguard.customers.resolve`); None when unknown."""
    return customers.resolve(store, user_id, service.project.config.ingest)


def _risk_now(service: ServiceState, store: Store, stored: str) -> CustomerRisk | None:
    try:
        return service.risk.risk(store, stored)
    except LookupError:  # no champion model
        return None


def _items(text: object) -> list[dict]:
    try:
        items = json.loads(str(text)) if text else []
    except ValueError:
        return []
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def _action_box(ctx: PageContext, plan: PlannedContact | None) -> str:
    lang = ctx.lang
    if plan is None:
        return note(e(t(lang, "no_plan_for_customer")))
    if plan.is_control:
        return (f'<p>{e(t(lang, "in_control", campaign=plan.campaign_id))}</p>')
    message = plan.message_zh if lang == "zh" else plan.message_en
    item_list = "".join(f"<li>{e(i.get('title') or i.get('item_id'))}</li>"
                        for i in _items(plan.items))
    uplift = plan.uplift
    facts = [(t(lang, "col_action"), f"<code>{e(plan.action)}</code>"),
             (t(lang, "col_channel"), e(plan.channel)),
             (t(lang, "col_campaign"),
              f"<code>{e(plan.campaign_id)}</code> ({e(minute(plan.created_at))})"),
             (t(lang, "col_uplift"), e(f"{uplift * 100:+.1f} pp") if uplift is not None else "—"),
             (t(lang, "col_cost"), money(plan.expected_cost)),
             (t(lang, "col_delivery"), e(plan.delivery_status) if plan.delivery_status
              else e(t(lang, "not_delivered")))]
    rows = "".join(f"<dt>{e(k)}</dt><dd>{v}</dd>" for k, v in facts)
    items_html = (f'<h3>{e(t(lang, "recommended_items"))}</h3><ul>{item_list}</ul>'
                  if item_list else "")
    return (f'<dl class="facts">{rows}</dl><h3>{e(t(lang, "message"))}</h3>'
            f'<blockquote class="message" id="message">{e(message)}</blockquote>{items_html}')


@dataclass(frozen=True, kw_only=True)
class _Now:
    """The headline: the real-time answer, else the newest stored score."""

    p_churn: float | None
    tier: str | None
    as_of: object
    status: str
    model_version: str
    reasons: list[str]
    reasons_note: str


def _now(lang: str, risk: CustomerRisk | None, scores: list[ScoreRow]) -> _Now:
    last = scores[-1] if scores else None
    if risk is not None and risk.status == "active":
        p_now, tier_now, as_of_now = risk.p_churn, risk.risk_tier, risk.as_of
        status = t(lang, "status_active")
    elif risk is not None:
        p_now, tier_now, as_of_now = None, None, risk.as_of
        status = t(lang, "status_lapsed")
    elif last is not None:
        p_now, tier_now, as_of_now = last.p_churn, last.risk_tier, last.as_of
        status = t(lang, "status_stored")
    else:
        p_now = tier_now = as_of_now = None
        status = t(lang, "status_unscored")
    reasons = list(risk.reasons.get(lang, ())) if risk is not None else []
    reasons_note = ""
    if not reasons and last is not None:
        reasons = list(last.reasons)
        if reasons and last.lang != lang:
            said = t(lang, "reasons_language", language=last.lang)
            reasons_note = f'<p class="muted">{e(said)}</p>'
    version = risk.model_version if risk else (last.model_version if last else "—")
    return _Now(p_churn=p_now, tier=tier_now, as_of=as_of_now, status=status,
                model_version=version, reasons=reasons, reasons_note=reasons_note)


def _headline(lang: str, now: _Now, seen: Timeline) -> str:
    return cards([
        (e(t(lang, "card_p_now")), e(probability(now.p_churn)),
         (tier_badge(now.tier, lang) + " " if now.tier else "") + e(now.status)),
        (e(t(lang, "card_as_of")), e(minute(now.as_of)),
         e(t(lang, "card_model", version=now.model_version))),
        (e(t(lang, "card_orders")), count(seen.orders),
         e(t(lang, "card_orders_sub", spend=money(seen.spend), last=day(seen.last_order)))),
        (e(t(lang, "card_events")), count(seen.events_total),
         e(t(lang, "card_signup", date=day(seen.signup_ts)))),
    ])


def _what(event: TimelineEvent) -> str | None:
    return event.title if event.title is not None else event.category


def _timeline_chart(lang: str, seen: Timeline) -> str:
    if not seen.events:
        return note(e(t(lang, "no_events")))
    points = [{"ts": x.ts, "type": x.type, "amount": x.amount,
               "detail": " · ".join(str(v) for v in (_what(x), money(x.amount) if x.amount
                                                      else None,
                                                      f"★{x.rating}" if x.rating else None) if v)}
              for x in seen.events]
    marks = [{"at": c.assigned_at, "label": str(c.action)} for c in seen.contacts
             if not c.is_control]
    return chart("chart-timeline", charts.event_timeline(points, marks, lang=lang),
                 caption=e(t(lang, "caption_timeline", n=count(len(seen.events)),
                             total=count(seen.events_total))))


def _history_tables(lang: str, seen: Timeline) -> tuple[str, str, str]:
    """The score, event and contact tables under the charts."""
    score_rows = [
        f'<tr><td>{e(day(s.as_of))}</td><td class="num">{e(probability(s.p_churn))}</td>'
        f"<td>{tier_badge(s.risk_tier, lang)}</td><td><code>{e(s.model_version)}</code></td></tr>"
        for s in reversed(seen.scores)]
    event_rows = [
        f"<tr><td>{e(minute(x.ts))}</td><td>{e(event_name(lang, x.type))}</td>"
        f"<td>{e(_what(x))}</td>"
        f'<td class="num">{money(x.amount) if x.amount is not None else "—"}</td>'
        f"<td>{e(x.rating)}</td><td>{e(x.channel)}</td></tr>"
        for x in seen.events[:EVENT_ROWS]]
    contact_rows = [
        f"<tr><td>{e(minute(c.assigned_at))}</td><td><code>{e(c.campaign_id)}</code></td>"
        f"<td><code>{e(c.action)}</code></td>"
        f"<td>{e(t(lang, 'yes') if c.is_control else t(lang, 'no'))}</td><td>{e(c.channel)}</td>"
        f"<td>{e(c.delivery_status)}</td></tr>" for c in seen.contacts]
    scores = table([e(t(lang, h)) for h in ('col_date', 'col_p_churn', 'col_tier', 'col_model')],
                   score_rows, empty=e(t(lang, 'no_scores_customer')))
    events = table([e(t(lang, h)) for h in ('col_time', 'col_type', 'col_item', 'col_amount',
                                             'col_rating', 'col_channel')], event_rows)
    contacts = table([e(t(lang, h)) for h in ('col_date', 'col_campaign', 'col_action',
                                               'col_control', 'col_channel', 'col_delivery')],
                     contact_rows, empty=e(t(lang, 'no_contacts')))
    return scores, events, contacts


def render_customer(ctx: PageContext, service: ServiceState, store: Store,
                    stored: str) -> str:
    lang = ctx.lang
    config = service.project.config
    risk = _risk_now(service, store, stored)
    seen = customers.timeline(store, stored, events=TIMELINE_EVENTS)
    now = _now(lang, risk, seen.scores)
    reasons_html = ("<ol class=\"reasons\" id=\"reasons\">" + "".join(
        f"<li>{e(r)}</li>" for r in now.reasons) + "</ol>" + now.reasons_note
        if now.reasons else note(e(t(lang, "no_reasons"))))
    points = [{"as_of": s.as_of, "p_churn": s.p_churn} for s in seen.scores]
    now_point = ({"as_of": now.as_of, "p_churn": now.p_churn}
                 if risk is not None and now.p_churn is not None else None)
    risk_chart = chart("chart-customer-risk", charts.risk_over_time(
        points, now_point, high=config.scoring.high, medium=config.scoring.medium, lang=lang))
    score_table, event_table, contact_table = _history_tables(lang, seen)
    body = f"""
{_headline(lang, now, seen)}
<div class="pair">
<section>
<h2>{e(t(lang, 'section_reasons'))}</h2>
{reasons_html}
</section>
<section id="recommendation">
<h2>{e(t(lang, 'section_action'))}</h2>
{_action_box(ctx, seen.newest_plan)}
</section>
</div>
{render_panel(ctx, service, store, stored, stored)}
<section>
<h2>{e(t(lang, 'section_risk_over_time'))}</h2>
{risk_chart}
{score_table}
</section>
<section>
<h2>{e(t(lang, 'section_timeline'))}</h2>
{_timeline_chart(lang, seen)}
<details><summary>{e(t(lang, 'latest_events', n=min(EVENT_ROWS, len(seen.events))))}</summary>
{event_table}
</details>
<h3>{e(t(lang, 'section_contacts'))}</h3>
{contact_table}
</section>
<p><a href="{e(ctx.url('/customers'))}">← {e(t(lang, 'back_to_list'))}</a></p>
"""
    return page(ctx, title=t(lang, "customer_title", user=stored), active="customers", body=body)
