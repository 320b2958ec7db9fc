"""The voice report drawn by the dashboard page and the HTML report, from a document alone
(fast; the slow module tests/voice/test_voice_surfaces.py draws them from a simulated shop)."""

from __future__ import annotations

from churnguard.report.html import build_html, page_sections
from churnguard.service.dashboard import voice
from churnguard.service.dashboard.layout import PageContext

from report.report_fixtures import synthetic_report_data

DOC = {
    "as_of": "2025-05-01", "start": "2025-04-03", "tests": 120, "notes": ["a note"],
    "settings": {"alert_fdr": 0.001, "baseline_weeks": 8, "weekly_below": 5.0,
                 "audience_tiers": ["high", "medium"]},
    "sentiment_sources": {"learned": 900, "vader": 12}, "scores_as_of": "2025-04-01T00:00:00",
    "topics": [{"topic": "快递 / 太慢", "keys": ["zh01", "zh04"], "keyphrases": ["快递", "太慢"],
                "texts": 90, "negative": 70, "negative_share": 0.78, "tested": "day",
                "baseline_per_day": 6.1, "alerts": 1}],
    "alerts": [{"alert_id": "d20250420-zh01+zh04", "topic": "快递 / 太慢", "keys": ["zh01", "zh04"],
                "keyphrases": ["快递", "太慢"], "period": "day", "start": "2025-04-20",
                "end": "2025-04-20", "count": 19, "expected": 6.3, "ratio": 3.0,
                "dispersion": 0.01, "p_value": 1e-7, "q_value": 2e-7, "authors": 2,
                "at_risk": 1, "customers": [
                    {"user_id": "u 7/x", "risk_tier": "high", "p_churn": 0.81, "texts": 1,
                     "at_risk": True},
                    {"user_id": "u8", "risk_tier": None, "p_churn": None, "texts": 2,
                     "at_risk": False}]}],
}


def _ctx(lang: str) -> PageContext:
    assets = {name: f"/static/{name}" for name in ("plotly.min.js", "dashboard.js",
                                                  "dashboard.css")}
    return PageContext(lang=lang, path="/voice", query={}, assets=assets, signed_in=True)


def test_the_dashboard_page_links_every_author_to_their_customer_page() -> None:
    html = voice.render(_ctx("en"), DOC)
    assert '<span id="alert-count">1</span>' in html
    assert 'id="alert-d20250420-zh01+zh04"' in html
    assert 'href="/customers/u%207%2Fx' in html and 'href="/customers/u8' in html
    assert "19 negative mentions, 6.3 expected" in html and "a note" in html
    assert 'class="at-risk"' in html
    zh = voice.render(_ctx("zh"), DOC)
    assert "负面提及 19 次" in zh and "lang=zh" in zh


def test_the_dashboard_page_without_alerts_says_so() -> None:
    html = voice.render(_ctx("en"), {**DOC, "alerts": []})
    assert "No alerts in the window." in html


def test_the_report_has_a_voice_section_only_with_a_voice_document() -> None:
    with_voice = synthetic_report_data(voice=DOC)
    assert "voice" in [s[0] for s in page_sections(with_voice)]
    html = build_html(with_voice)
    assert '<section id="voice">' in html and "d20250420-zh01+zh04" in html
    assert "<td>u 7/x</td>" in html and "<td>u8</td>" not in html  # at-risk authors only
    assert "voice" not in [s[0] for s in page_sections(synthetic_report_data())]


def test_a_project_without_texts_answers_409_and_the_page_says_why(tmp_path) -> None:
    from fastapi.testclient import TestClient

    from churnguard.project import init_project
    from churnguard.service import create_app
    from service.helpers import READ, error, headers, settings

    project, _ = init_project(tmp_path / "empty")
    with TestClient(create_app(project, settings(warm_on_start=False)),
                    raise_server_exceptions=False) as client:
        assert error(client.get("/v1/voice", headers=headers(READ))) == (409, "no_texts")
        assert client.post("/dashboard/session", headers=headers(READ)).status_code == 200
        page = client.get("/voice")
        assert page.status_code == 200
        assert "No voice report: no review or ticket texts in the store to watch" in page.text
