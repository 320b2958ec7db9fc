"""The dashboard through FastAPI's TestClient: sign-in, every page in both languages, the at-risk
table's filters and export, a customer's page, escaping, the planner's JSON endpoint and the
commit behind a write key. The browser tests (test_dashboard_browser.py) use the same shop."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from churnguard.evaluate import backtest
from churnguard.ingest import ingest_files
from churnguard.intervene.measure import measure_campaign, save_measurement
from churnguard.intervene.plan import make_plan, save_plan
from churnguard.labels import scoring_cutoff
from churnguard.project import Project, init_project
from churnguard.reporting import save_backtest
from churnguard.scoring import score_customers
from churnguard.service import create_app
from churnguard.service.dashboard.i18n import EN, ZH
from churnguard.service.dashboard.sessions import COOKIE
from churnguard.simulate import simulate
from churnguard.training import train_model

from service.helpers import ADMIN, READ, WRITE, error, headers, settings

PAGES = ("/", "/customers", "/model", "/operations", "/campaigns")
_SHOP: Path | None = None


def build_dashboard_shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,500 simulated customers over 420 days with everything the dashboard shows: a backtest
    (recency, gbdt and the oracle), a gbdt champion, scores at two dates a month apart, a
    campaign plan (with a control group) and the measurement of the newest past campaign. Built
    once per session (both dashboard test modules call this); tests copy the project before
    writing to it."""
    global _SHOP
    if _SHOP is not None:
        return _SHOP
    base = tmp_path_factory.mktemp("dashboard_shop")
    # Seed 7: the effects learned from its three small campaigns (each about +-0.045) make some
    # actions worth their cost, so the planner has something to buy. On seed 5 every action's
    # estimate came out below 0 once the recalibration adjusted for the outcome's baseline.
    sim = simulate(n_users=1500, days=420, seed=7, out_dir=base / "inputs")
    project, _ = init_project(base / "project")
    config = project.config
    with project.open_store() as store:
        for kind in ("items", "users", "events", "campaigns"):
            ingest_files(store, kind=kind, files=[sim.paths[kind]])
        truth = pd.read_parquet(sim.paths["truth_churn"])
        save_backtest(store, backtest(store, definition=config.churn,
                                      models=("recency", "gbdt"), truth=truth))
        train_model(store, definition=config.churn, model="gbdt", promote=True)
        now = scoring_cutoff(store)
        for as_of in (now - dt.timedelta(days=30), now):
            score_customers(store, definition=config.churn, tiers=config.scoring, as_of=as_of)
        # A budget for about 25 contacts: the effects learned from this shop's three small
        # randomised campaigns favour the dearer actions, and 10% of a handful is no control.
        plan = make_plan(store, config=config, budget=100, campaign_id="spring")
        save_plan(store, plan, config=config)
        # What the tests rely on, checked here so that a change to the shop fails loudly instead
        # of leaving a case untested: a second page of high-risk customers, and a plan with both
        # contacted customers and a control group.
        (high,), = store.con.execute("SELECT count(*) FROM scores WHERE risk_tier = 'high' "
                                     "AND as_of = (SELECT max(as_of) FROM scores)").fetchall()
        assert high > 50, f"the dashboard shop has {high} high-risk customers, not a 2nd page"
        assert plan.rows["is_control"].any() and not plan.rows["is_control"].all(), \
            "the dashboard shop's plan needs contacted customers and a control group"
        (newest,) = store.con.execute(
            f"SELECT campaign_id FROM campaigns GROUP BY campaign_id HAVING bool_or(is_control) "
            f"AND max(assigned_at) + INTERVAL ({config.intervene.window_days}) DAY <= "
            "(SELECT max(ts) FROM events) ORDER BY max(assigned_at) DESC LIMIT 1").fetchall()[0]
        save_measurement(store, measure_campaign(store, campaign_id=newest))
    _SHOP = project.root
    return _SHOP


def dashboard_app(project_dir: Path, **overrides: object):
    """The service over the project, as create_app builds it: the dashboard is part of it."""
    return create_app(Project.load(project_dir), settings(**overrides))


@pytest.fixture(scope="module")
def shop_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("dashboard_copy") / "project"
    shutil.copytree(build_dashboard_shop(tmp_path_factory), target)
    return target


@pytest.fixture(scope="module")
def client(shop_copy: Path) -> Iterator[TestClient]:
    """A signed-in reader (tests may commit plans through it: it holds a private copy)."""
    with TestClient(dashboard_app(shop_copy, warm_on_start=False),
                    raise_server_exceptions=False) as c:
        response = c.post("/dashboard/session", headers=headers(READ))
        assert response.status_code == 200
        yield c


def _store_value(client: TestClient, sql: str, params: list | None = None):
    with client.app.state.service.pool.reading() as store:
        return store.con.execute(sql, params or []).fetchall()


def _ready_preview(client: TestClient, budget: float) -> dict:
    deadline = time.monotonic() + 180
    while True:
        response = client.get("/dashboard/api/plan-preview", params={"budget": budget})
        if response.status_code != 202:
            assert response.status_code == 200, response.text
            return response.json()
        assert time.monotonic() < deadline, "the planner did not get ready in 3 minutes"
        time.sleep(0.5)


# -- signing in ---------------------------------------------------------------------------------
def test_pages_need_a_session_that_a_read_key_opens(shop_copy: Path) -> None:
    with TestClient(dashboard_app(shop_copy, warm_on_start=False),
                    raise_server_exceptions=False) as c:
        response = c.get("/customers?tier=high", follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == "/login?next=%2Fcustomers%3Ftier%3Dhigh"
        assert c.get("/login").status_code == 200
        assert error(c.post("/dashboard/session")) == (401, "missing_api_key")
        assert error(c.post("/dashboard/session", headers=headers("x" * 20))) == \
            (401, "invalid_api_key")
        assert error(c.get("/dashboard/api/plan-preview")) == (401, "missing_api_key")
        c.cookies.set(COOKIE, "forged-token")
        assert c.get("/", follow_redirects=False).status_code == 303

        signed = c.post("/dashboard/session", headers=headers(READ))
        assert signed.status_code == 200 and signed.json() == {"role": "read"}
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        assert READ not in cookie  # the cookie holds a session token, never the key
        assert c.get("/").status_code == 200

        assert c.post("/logout", follow_redirects=False).status_code == 303
        assert c.get("/", follow_redirects=False).status_code == 303


def test_in_development_without_keys_nobody_signs_in(shop_copy: Path) -> None:
    with TestClient(dashboard_app(shop_copy, warm_on_start=False, env="development",
                                  api_keys={}), raise_server_exceptions=False) as c:
        assert c.get("/").status_code == 200
        assert c.get("/login?next=/model", follow_redirects=False).headers["location"] == \
            "/model"
        for elsewhere in ("//evil.example/x", "https://evil.example/", "/\\evil", "model"):
            assert c.get("/login", params={"next": elsewhere},
                         follow_redirects=False).headers["location"] == "/"
        # The write still needs a key in the header, even here.
        assert error(c.post("/dashboard/api/plans", json={"budget": 1})) == \
            (401, "missing_api_key")


def test_an_empty_project_says_what_to_run_on_every_page(tmp_path: Path) -> None:
    project, _ = init_project(tmp_path / "empty")
    with TestClient(dashboard_app(project.root, warm_on_start=False, env="development",
                                  api_keys={}), raise_server_exceptions=False) as c:
        for path in PAGES:
            response = c.get(path)
            assert response.status_code == 200, (path, response.text[:200])
        assert "run `churnguard score`" in c.get("/").text
        assert "run `churnguard backtest`" in c.get("/model").text
        assert c.get("/customers/u1").status_code == 404
        preview = c.get("/dashboard/api/plan-preview", params={"budget": 10})
        assert preview.status_code == 503 and preview.json()["status"] == "error"
        assert c.get("/customers.csv").status_code == 404


# -- pages --------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_in_english_and_chinese(client: TestClient, path: str) -> None:
    english = client.get(path)
    chinese = client.get(path, params={"lang": "zh"})
    for response in (english, chinese):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert response.headers["cache-control"] == "no-store"
        assert "<script>" not in response.text  # no inline script: only data blocks
        assert "cdn" not in response.text.lower()
    assert '<html lang="en">' in english.text and "At-risk customers" in english.text
    assert '<html lang="zh-Hans">' in chinese.text and "高风险客户" in chinese.text
    assert "At-risk customers" not in chinese.text
    # The switch leads to the same page in the other language.
    assert 'id="lang-switch" hreflang="zh"' in english.text
    assert f'href="{path}?lang=zh"' in english.text


def test_overview_adds_up_the_newest_scoring_run(client: TestClient) -> None:
    (n, churners, version, as_of), = _store_value(
        client, "SELECT count(*), sum(p_churn), any_value(model_version), max(as_of) FROM scores "
                "WHERE as_of = (SELECT max(as_of) FROM scores)")
    text = client.get("/").text
    assert f"{n:,}" in text and f"{round(churners):,}" in text
    assert f"Scores of model {version} as of {as_of:%Y-%m-%d}." in text
    assert 'data-chart="chart-risk-data"' in text and 'data-chart="chart-trend-data"' in text


def test_at_risk_table_filters_sorts_pages_and_exports(client: TestClient) -> None:
    (as_of,), = _store_value(client, "SELECT max(as_of) FROM scores")
    high = _store_value(client, "SELECT user_id FROM scores WHERE as_of = ? AND "
                                "risk_tier = 'high' ORDER BY p_churn DESC, user_id", [as_of])
    page = client.get("/customers", params={"tier": "high"}).text
    assert f"1–{min(50, len(high))} of {len(high):,} customers" in page
    assert page.count('class="tier tier-high"') == min(50, len(high))
    assert "tier-low" not in page

    lowest = _store_value(client, "SELECT user_id FROM scores WHERE as_of = ? "
                                  "ORDER BY p_churn, user_id LIMIT 1", [as_of])[0][0]
    ascending = client.get("/customers", params={"sort": "p_churn", "order": "asc"}).text
    first_link = ascending.split('class="customer-link" href="', 1)[1].split('">', 1)[1]
    assert first_link.startswith(f"{lowest}</a>")

    # The shop has more high-risk customers than one page holds: the second page is real.
    assert len(high) > 50
    second = client.get("/customers", params={"tier": "high", "page": 2}).text
    assert f"51–{min(100, len(high))} of {len(high):,} customers" in second
    assert second.count('class="tier tier-high"') == min(100, len(high)) - 50

    target = high[0][0]
    found = client.get("/customers", params={"q": target}).text
    assert f">{target}</a>" in found and "1–1 of 1 customers" in found

    export = client.get("/customers.csv", params={"tier": "high"})
    assert export.status_code == 200
    assert export.headers["content-disposition"] == \
        f'attachment; filename="at-risk-{as_of:%Y-%m-%d}.csv"'
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert [r["user_id"] for r in rows] == [u for (u,) in high]
    assert {r["risk_tier"] for r in rows} == {"high"}

    region, value = _store_value(client, "SELECT name, min(value) FROM user_attributes "
                                         "WHERE name = 'region' GROUP BY name")[0]
    in_region = {u for (u,) in _store_value(
        client, "SELECT s.user_id FROM scores s JOIN user_attributes a USING (user_id) "
                "WHERE s.as_of = ? AND a.name = ? AND a.value = ?", [as_of, region, value])}
    segment = client.get("/customers.csv", params={"segment": f"{region}={value}"})
    exported = list(csv.DictReader(io.StringIO(segment.text)))
    assert {r["user_id"] for r in exported} == in_region
    assert {r["segment"] for r in exported} == {value}

    reason = client.get("/customers.csv", params={"reason": "review"})
    kept = list(csv.DictReader(io.StringIO(reason.text)))
    assert kept and all("review" in " ".join((r["reason_1"], r["reason_2"], r["reason_3"]))
                        .lower() for r in kept)
    # Unknown filter values fall back to the defaults instead of failing.
    assert client.get("/customers", params={"tier": "x", "sort": "drop table",
                                            "page": "-3", "segment": "no=such"}).status_code == 200


def test_customer_page_shows_risk_reasons_and_the_planned_message(client: TestClient) -> None:
    user, message_en, message_zh = _store_value(
        client, "SELECT user_id, message_en, message_zh FROM plan_rows "
                "WHERE NOT is_control ORDER BY expected_margin DESC LIMIT 1")[0]
    english = client.get(f"/customers/{user}")
    assert english.status_code == 200
    assert f"Customer {user}" in english.text
    assert message_en.replace("'", "&#x27;").replace('"', "&quot;")[:40] in english.text
    assert "spring" in english.text  # the campaign of the plan
    assert 'data-chart="chart-customer-risk-data"' in english.text
    assert 'data-chart="chart-timeline-data"' in english.text
    chinese = client.get(f"/customers/{user}", params={"lang": "zh"})
    assert message_zh[:20] in chinese.text and "推荐措施" in chinese.text

    # The plan holds out a control group (the shop's plan is measurable): its members say so.
    (control,), = _store_value(client, "SELECT user_id FROM plan_rows "
                                       "WHERE campaign_id = 'spring' AND is_control "
                                       "ORDER BY user_id LIMIT 1")
    assert "In the control group of campaign spring" in client.get(f"/customers/{control}").text
    assert "In the control group" not in english.text

    missing = client.get("/customers/nobody-like-this")
    assert missing.status_code == 404 and "No customer with this id" in missing.text


def test_model_quality_shows_leaderboard_curves_and_drift(client: TestClient) -> None:
    text = client.get("/model").text
    for name in ("recency", "gbdt", "oracle"):
        assert f"<th scope=\"row\">{name}" in text
    for chart_id in ("chart-roc", "chart-calibration", "chart-lift", "chart-score-drift"):
        assert f'data-chart="{chart_id}-data"' in text
    assert "churn probability (scores)" in text
    assert text.count('class="state state-') >= 2  # scores and at least one input


# -- escaping -----------------------------------------------------------------------------------
HOSTILE = '<script>window.__pwned=1</script>"><img src=x onerror=alert(1)>'


def test_every_string_from_the_store_is_escaped(tmp_path: Path,
                                                tmp_path_factory: pytest.TempPathFactory) -> None:
    target = tmp_path / "project"
    shutil.copytree(build_dashboard_shop(tmp_path_factory), target)
    with Project.load(target).open_store() as store:
        (user,) = store.con.execute("SELECT user_id FROM plan_rows WHERE NOT is_control "
                                    "LIMIT 1").fetchall()[0]
        store.con.execute("UPDATE scores SET reason_1 = ? WHERE user_id = ?", [HOSTILE, user])
        store.con.execute("UPDATE plan_rows SET message_en = ?, action = ?, items = ? "
                          "WHERE user_id = ?",
                          [HOSTILE, HOSTILE, f'[{{"item_id": "i1", "title": "{HOSTILE[:20]}"}}]',
                           user])
        store.con.execute("UPDATE user_attributes SET value = ? WHERE user_id = ? AND "
                          "name = 'region'", [HOSTILE, user])
        store.con.execute("UPDATE models SET name = ?", [HOSTILE])
        store.con.execute("UPDATE backtest_predictions SET model = ? WHERE model = 'recency'",
                          [HOSTILE])
        store.con.execute("UPDATE plans SET status = ?", [HOSTILE])
    with TestClient(dashboard_app(target, warm_on_start=False),
                    raise_server_exceptions=False) as c:
        c.post("/dashboard/session", headers=headers(READ))
        region = f"region={HOSTILE}"
        for path, params in (("/customers", {"q": user}), ("/customers", {"segment": region}),
                             (f"/customers/{user}", {}), ("/model", {}), ("/campaigns", {}),
                             ("/customers", {"reason": HOSTILE, "q": HOSTILE})):
            response = c.get(path, params=params)
            assert response.status_code == 200, (path, response.text[:300])
            assert "<script>window.__pwned" not in response.text
            assert "<img src=x" not in response.text
        assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in \
            c.get("/customers", params={"q": user}).text
        # Chart labels are escaped for Plotly (which reads some HTML), then JSON-escaped.
        assert "\\u0026lt;script\\u0026gt;window.__pwned" in c.get("/model").text
        export = c.get("/customers.csv", params={"q": user}).text
        row = next(csv.DictReader(io.StringIO(export)))
        assert row["reason_1"] == HOSTILE  # CSV is data, not HTML: kept as stored


def test_csv_export_defuses_spreadsheet_formulas(tmp_path: Path,
                                                 tmp_path_factory: pytest.TempPathFactory) -> None:
    target = tmp_path / "project"
    shutil.copytree(build_dashboard_shop(tmp_path_factory), target)
    with Project.load(target).open_store() as store:
        (user,) = store.con.execute("SELECT user_id FROM scores LIMIT 1").fetchall()[0]
        store.con.execute("UPDATE scores SET reason_1 = '=HYPERLINK(\"http://x\")' "
                          "WHERE user_id = ?", [user])
    with TestClient(dashboard_app(target, warm_on_start=False, env="development", api_keys={}),
                    raise_server_exceptions=False) as c:
        row = next(csv.DictReader(io.StringIO(c.get("/customers.csv",
                                                    params={"q": user}).text)))
    assert row["reason_1"] == "'=HYPERLINK(\"http://x\")"


# -- the planner --------------------------------------------------------------------------------
def test_budget_preview_grows_with_the_budget_and_costs_stay_within_it(
        client: TestClient) -> None:
    first = _ready_preview(client, 0)
    assert first["status"] == "ready" and first["max_budget"] > 0
    assert first["preview"]["contacted"] == 0 and first["preview"]["expected_saves"] == 0
    previews = [_ready_preview(client, b)["preview"]
                for b in (first["max_budget"] / 10, first["max_budget"] / 2,
                          first["max_budget"])]
    saves = [p["expected_saves"] for p in previews]
    assert saves == sorted(saves) and saves[-1] > saves[0] > 0
    for p in previews:
        assert p["expected_cost"] <= p["budget"] + 1e-6
        assert p["contacted"] == pytest.approx(0.9 * p["planned"])
        assert sum(a["customers"] for a in p["per_action"]) == pytest.approx(p["contacted"])
    curve = client.get("/dashboard/api/plan-preview",
                       params={"budget": 5, "curve": "true"}).json()["curve"]
    assert curve["data"][0]["type"] == "scatter" and len(curve["data"][0]["x"]) == 17
    assert error(client.get("/dashboard/api/plan-preview", params={"budget": -1})) == \
        (422, "invalid_request")
    assert error(client.get("/dashboard/api/plan-preview", params={"budget": "nan"}))[0] == 422


def test_committing_a_plan_needs_a_write_key_in_the_header(client: TestClient) -> None:
    _ready_preview(client, 10)
    body = {"budget": 10, "campaign_id": "dash-1"}
    # The session cookie alone (a reader's) does not commit.
    assert error(client.post("/dashboard/api/plans", json=body)) == (401, "missing_api_key")
    assert error(client.post("/dashboard/api/plans", json=body, headers=headers(READ))) == \
        (403, "forbidden")
    assert error(client.post("/dashboard/api/plans", json={"budget": -5},
                             headers=headers(WRITE))) == (422, "invalid_request")
    assert error(client.post("/dashboard/api/plans", json={"budget": 1, "campaign_id": "a b"},
                             headers=headers(WRITE))) == (422, "invalid_request")
    committed = client.post("/dashboard/api/plans", json=body, headers=headers(WRITE))
    assert committed.status_code == 201, committed.text
    out = committed.json()
    assert out["campaign_id"] == "dash-1" and out["treated"] > 0
    assert out["expected_cost"] <= 10 + 1e-6
    (treated,), = _store_value(client, "SELECT count(*) FROM plan_rows WHERE campaign_id = "
                                       "'dash-1' AND NOT is_control")
    assert treated == out["treated"]
    again = client.post("/dashboard/api/plans", json=body, headers=headers(ADMIN))
    assert error(again) == (422, "invalid_request")
    assert "dash-1" not in again.text  # errors never repeat what was sent
    page = client.get("/campaigns").text
    assert "<code>dash-1</code>" in page
    assert "A plan for this scoring date already exists (dash-1, spring)" in page


# -- plumbing -----------------------------------------------------------------------------------
def test_plotly_is_served_from_the_package_compressed_and_cached(client: TestClient) -> None:
    page = client.get("/").text
    src = page.split('<script src="', 1)[1].split('"', 1)[0]
    assert src.startswith("/dashboard/static/plotly-") and src.endswith(".min.js")
    response = client.get(src, headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert len(response.content) > 1_000_000  # httpx decompressed the whole bundle
    assert error(client.get("/dashboard/static/other.js")) == (404, "not_found")


def test_dashboard_routes_stay_out_of_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if not p.startswith("/v1") and p not in
                ("/healthz", "/readyz", "/metrics")]


def test_both_languages_have_the_same_strings() -> None:
    assert set(EN) == set(ZH)
    for key in EN:
        assert EN[key].count("{") == ZH[key].count("{"), key


def test_campaigns_page_shows_what_the_campaigns_have_taught(client: TestClient) -> None:
    """The learning curve and each action's pooled effect after each measured campaign, in
    English and in Chinese (report/learning.py computes them; tests/report tests the maths)."""
    measured = _store_value(client, "SELECT count(DISTINCT campaign_id) FROM measurements")[0][0]
    assert measured >= 1
    page = client.get("/campaigns").text
    learning = page[page.index("What the campaigns have taught"):]
    curve = re.search(r'<table class="learning-curve">.*?<tbody>(.*?)</tbody>', learning,
                      re.S).group(1)
    assert curve.count("<tr>") == measured
    assert 'class="ci">[' in curve  # the retention and revenue intervals
    assert 'id="chart-learning"' in learning
    assert "Learning curve: incremental retention per campaign" in learning
    actions = re.findall(r"<h3>([^<]+)</h3>", learning)
    assert actions and learning.count('<table class="effect-history">') == len(actions)
    assert f"{actions[0]}: effect on retention as known" in learning
    zh = client.get("/campaigns", params={"lang": "zh"}).text
    assert "活动积累的认识" in zh and "学习曲线：各活动的增量留存率" in zh
    assert "此后的认识（汇总）" in zh
