"""The agents' assistant on a customer's page: for each open ticket (newest first), the similar
resolved tickets with their replies and the recommended reply, or the abstention
(:func:`churnguard.assistant.assist`, the same answer as
``GET /v1/users/{id}/tickets/{ticket}/assist``)."""

from __future__ import annotations

from churnguard import assistant
from churnguard.service.dashboard.i18n import t
from churnguard.service.dashboard.layout import PageContext, e, minute, note, table
from churnguard.service.state import ServiceState
from churnguard.store import Store

PANEL_TICKETS = 3  # open tickets shown with help; the rest are counted


def _risk_line(lang: str, help_: assistant.Assistance) -> str:
    if help_.risk.tier is None:
        return t(lang, "assist_unscored")
    if help_.at_risk:
        return t(lang, "assist_at_risk", tier=t(lang, f"tier_{help_.risk.tier}"))
    return t(lang, "assist_not_at_risk")


def _one(ctx: PageContext, user: str, help_: assistant.Assistance) -> str:
    lang = ctx.lang
    title = t(lang, "assist_ticket", ticket=help_.ticket_id, when=minute(help_.opened_at))
    head = (f'<h3>{e(title)}</h3><p class="muted">{e(_risk_line(lang, help_))}</p>'
            f'<blockquote class="ticket" lang="{e(help_.lang)}">{e(help_.text)}</blockquote>')
    if help_.abstained:
        best = "—" if help_.top_similarity is None else f"{help_.top_similarity:.2f}"
        return head + note(e(t(lang, "assist_abstained", best=best,
                               threshold=f"{help_.threshold:.2f}")))
    rows = [f'<tr><td lang="{e(help_.lang)}">{e(m.ticket.text)}</td>'
            f'<td lang="{e(help_.lang)}">{e(m.ticket.reply)}</td>'
            f'<td class="num">{m.similarity:.2f}</td></tr>' for m in help_.similar]
    similar = (f'<h4>{e(t(lang, "assist_similar"))}</h4>' + table(
        [e(t(lang, h)) for h in ("assist_col_ticket", "assist_col_reply",
                                 "assist_col_similarity")], rows))
    rec = help_.recommendation
    if rec is None:
        recommended = note(e(t(lang, "assist_no_template")))
    else:
        heading = t(lang, "assist_recommended", language=help_.lang, template=rec.template_id)
        recommended = (f'<h4>{e(heading)}</h4><blockquote class="message recommended" '
                       f'lang="{e(help_.lang)}" data-template="{e(rec.template_id)}">'
                       f"{e(rec.text)}</blockquote>")
    others = "".join(f'<li><code>{e(s.template_id)}</code>: {e(s.text)}</li>'
                     for s in help_.alternatives)
    alternatives = (f'<details><summary>{e(t(lang, "assist_alternatives"))}</summary>'
                    f"<ul>{others}</ul></details>" if others else "")
    hint = t(lang, "assist_log_hint", user=user, ticket=help_.ticket_id)
    hint = f'<p class="muted">{e(hint)}</p>'
    return head + similar + recommended + alternatives + hint


def render_panel(ctx: PageContext, service: ServiceState, store: Store, stored: str,
                 user: str) -> str:
    """The panel's HTML (``user``: the id as the shop writes it, for the hint)."""
    lang = ctx.lang
    config = service.project.config
    tickets = assistant.open_tickets(store, stored)
    if not tickets:
        body = note(e(t(lang, "assist_none_open")))
    else:
        parts = [
            f'<article class="assist" data-ticket="{e(x.ticket_id)}">' + _one(
                ctx, user, assistant.assist(store, stored, x.ticket_id, config=config.assistant,
                                            actions=config.intervene.actions)) + "</article>"
            for x in tickets[:PANEL_TICKETS]]
        more = len(tickets) - PANEL_TICKETS
        body = "".join(parts) + (f'<p class="muted">{e(t(lang, "assist_more", n=more))}</p>'
                                 if more > 0 else "")
    return (f'<section id="assistant"><h2>{e(t(lang, "section_assistant"))}</h2>{body}'
            "</section>")
