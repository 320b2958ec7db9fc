"""The dashboard's routes: pages, sign-in, the planner's JSON endpoints and static files.

None of them is part of the REST API's contract, so none appears in the OpenAPI document.
Pages are read-only; who may read them is decided by :mod:`~churnguard.service.dashboard.sessions`.
The one write, committing a campaign plan, takes a ``write`` key in the ``X-API-Key`` header and
goes through the service's own key check (:func:`churnguard.service.auth.require`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from churnguard.intervene.plan import PlanError
from churnguard.score_runs import latest_run
from churnguard.service.auth import API_KEY_HEADER, key_bucket, require
from churnguard.operate import inbox
from churnguard.service.dashboard import (
    campaigns,
    customers,
    monitor,
    operations,
    overview,
    quality,
    voice,
)
from churnguard.service.dashboard.assets import LONG_CACHE, STATIC_PREFIX, Assets
from churnguard.service.dashboard.i18n import lang_of, t
from churnguard.service.dashboard.layout import PageContext, bare_page, e, note, page
from churnguard.service.dashboard.memo import Memo
from churnguard.service.dashboard.planner import Planner
from churnguard.service.dashboard.sessions import COOKIE, SESSION_SECONDS, Sessions, open_reads
from churnguard.errors import ChurnguardError
from churnguard.service.errors import ApiError
from churnguard.service.monitor_reports import monitor_document, report_cache
from churnguard.service.operations import cycles_out, decisions_out
from churnguard.service.state import ServiceState, service_of
from churnguard.service.voice_reports import voice_document
from churnguard.store import Store

log = logging.getLogger("churnguard.service")

# Pages hold personal data: never cached, never framed, scripts only from this origin.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; "
                               "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
                               "connect-src 'self'; object-src 'none'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
MAX_BUDGET = 1e12
OPERATIONS_CYCLES = 5  # the newest cycles the Operations page shows
# Module level: FastAPI resolves the routes' (string) annotations in this module's globals.
Service = Annotated[ServiceState, Depends(service_of)]


class PlanCommitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    budget: float = Field(ge=0, le=MAX_BUDGET, allow_inf_nan=False)
    campaign_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.\-]{1,64}$")


class PlanCommitOut(BaseModel):
    campaign_id: str
    as_of: str
    budget: float
    treated: int
    control: int
    expected_saves: float
    expected_cost: float


@dataclass(frozen=True, kw_only=True)
class Viewer:
    signed_in: bool  # False: development without keys, nobody signs in


class Dashboard:
    """What the dashboard keeps between requests: sessions, the planner, aggregate caches."""

    def __init__(self) -> None:
        self.sessions = Sessions()
        self.planner = Planner()
        self.memo = Memo()
        self.assets = Assets()

    def viewer(self, request: Request, service: ServiceState) -> Viewer | Response:
        """Who reads, or the answer to send instead (sign in first; too many requests)."""
        if open_reads(service.settings):
            return Viewer(signed_in=False)
        token = request.cookies.get(COOKIE)
        if self.sessions.role(token) is None:
            return _to_sign_in(request)
        wait = service.limiter.take(self.sessions.bucket(token or ""))
        if wait > 0:
            return HTMLResponse(e(t(lang_of(request), "rate_limited")), status_code=429,
                                headers={**PAGE_HEADERS,
                                         "Retry-After": str(max(1, math.ceil(wait)))})
        return Viewer(signed_in=True)

    def api_viewer(self, request: Request, service: ServiceState) -> None:
        """The same check for the pages' JSON calls, answered as API errors."""
        if open_reads(service.settings):
            return
        token = request.cookies.get(COOKIE)
        if self.sessions.role(token) is None:
            raise ApiError("missing_api_key", "sign in to the dashboard first (/login)")
        wait = service.limiter.take(self.sessions.bucket(token or ""))
        if wait > 0:
            raise ApiError("rate_limited", "too many requests; retry later",
                           headers={"Retry-After": str(max(1, math.ceil(wait)))})

    def context(self, request: Request, service: ServiceState) -> PageContext | Response:
        """What a page needs to draw its frame, or the answer to send instead of the page."""
        viewer = self.viewer(request, service)
        if isinstance(viewer, Response):
            return viewer
        return PageContext(lang=lang_of(request), path=request.url.path,
                           query=dict(request.query_params), assets=self.assets.urls,
                           signed_in=viewer.signed_in)


def _to_sign_in(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    lang = lang_of(request)
    url = f"/login?next={quote(target, safe='')}" + ("&lang=zh" if lang == "zh" else "")
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


def _html(text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status, headers=PAGE_HEADERS)


def _safe_next(target: str | None) -> str:
    """Only a path on this site (never ``//host`` or a full URL) is a place to go back to."""
    if (not target or not target.startswith("/") or target.startswith("//") or "\\" in target
            or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target)):
        return "/"
    return target


def _not_found(ctx: PageContext) -> HTMLResponse:
    body = note(e(t(ctx.lang, "customer_not_found"))) + \
        f'<p><a href="{e(ctx.url("/customers"))}">← {e(t(ctx.lang, "back_to_list"))}</a></p>'
    return _html(page(ctx, title=t(ctx.lang, "customer_not_found_title"), active="customers",
                      body=body), status=404)


def dashboard_router() -> APIRouter:
    """The dashboard's routes; ``create_app`` includes them with ``app.include_router``."""
    board = Dashboard()
    router = APIRouter(include_in_schema=False)
    _page_routes(router, board)
    _voice_routes(router, board)
    _sign_in_routes(router, board)
    _planner_routes(router, board)
    _static_routes(router, board)
    return router


def _page_routes(router: APIRouter, board: Dashboard) -> None:
    """The pages: overview, customers (list, export, one customer), model quality, monitor,
    operations, campaigns."""

    def read_page(request: Request, service: ServiceState,
                  draw: Callable[[PageContext, Store], str]) -> Response:
        """The page ``draw`` writes from the store, for whoever may read it."""
        ctx = board.context(request, service)
        if isinstance(ctx, Response):
            return ctx
        with service.pool.reading() as store:
            return _html(draw(ctx, store))

    @router.get("/", response_class=HTMLResponse)
    def overview_page(request: Request, service: Service) -> Response:
        return read_page(request, service, lambda ctx, store: overview.render(
            ctx, store, service.project.config, board.memo))

    @router.get("/customers", response_class=HTMLResponse)
    def customers_page(request: Request, service: Service) -> Response:
        return read_page(request, service, lambda ctx, store: customers.render_list(
            ctx, service, store, dict(request.query_params)))

    @router.get("/customers.csv")
    def customers_export(request: Request, service: Service) -> Response:
        viewer = board.viewer(request, service)
        if isinstance(viewer, Response):
            return viewer
        with service.pool.reading() as store:
            text = customers.export_csv(service, store, dict(request.query_params))
            run = latest_run(store)
        if text is None or run is None:
            return _html(e(t(lang_of(request), "no_scores")), status=404)
        name = f"at-risk-{run.as_of:%Y-%m-%d}.csv"
        return Response(text.encode("utf-8"), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"',
                                 "Cache-Control": "no-store",
                                 "X-Content-Type-Options": "nosniff"})

    @router.get("/customers/{user_id:path}", response_class=HTMLResponse)
    def customer_page(user_id: str, request: Request, service: Service) -> Response:
        ctx = board.context(request, service)
        if isinstance(ctx, Response):
            return ctx
        if not user_id.strip() or len(user_id) > 256:
            return _not_found(ctx)
        with service.pool.reading() as store:
            stored = customers.resolve(service, store, user_id)
            if stored is None:
                return _not_found(ctx)
            return _html(customers.render_customer(ctx, service, store, stored))

    @router.get("/model", response_class=HTMLResponse)
    def quality_page(request: Request, service: Service) -> Response:
        return read_page(request, service, lambda ctx, store: quality.render(
            ctx, service, store, board.memo))

    @router.get("/monitor", response_class=HTMLResponse)
    def monitor_page(request: Request, service: Service) -> Response:
        def draw(ctx: PageContext, store: Store) -> str:
            try:
                document = monitor_document(service, store, report_cache(request.app.state),
                                            None)
            except ChurnguardError as exc:
                if not exc.bad_input:
                    raise
                # Nothing to monitor yet (no events, nobody in the population): said on the
                # page, as the other pages say what is missing.
                return monitor.render_failure(ctx, str(exc))
            return monitor.render(ctx, document)

        return read_page(request, service, draw)

    @router.get("/operations", response_class=HTMLResponse)
    def operations_page(request: Request, service: Service) -> Response:
        def draw(ctx: PageContext, store: Store) -> str:
            folder = inbox.folder_of(service.project.root, service.project.config.operate.inbox)
            gate = decisions_out(store)
            return operations.render(
                ctx, cycles=cycles_out(service, store, limit=OPERATIONS_CYCLES),
                champion=gate.champion, decisions=gate.decisions, inbox_folder=str(folder),
                waiting=inbox.waiting(folder), seen=inbox.seen_files(store, limit=50))

        return read_page(request, service, draw)

    @router.get("/campaigns", response_class=HTMLResponse)
    def campaigns_page(request: Request, service: Service) -> Response:
        ctx = board.context(request, service)
        if isinstance(ctx, Response):
            return ctx
        # The page's script asks for the preview at once, which starts the preparation; the
        # page itself changes nothing.
        state = board.planner.state(service, start=False)
        with service.pool.reading() as store:
            run = latest_run(store)
            return _html(campaigns.render(ctx, store, service.project.config, state,
                                          run.population if run else 0))


def _voice_routes(router: APIRouter, board: Dashboard) -> None:
    """The voice page: topics and surge alerts of reviews and tickets."""

    @router.get("/voice", response_class=HTMLResponse)
    def voice_page(request: Request, service: Service) -> Response:
        ctx = board.context(request, service)
        if isinstance(ctx, Response):
            return ctx
        try:
            document = voice_document(request.app.state, service, as_of=None, days=None)
        except ChurnguardError as exc:
            if not exc.bad_input:
                raise
            return _html(voice.render_failure(ctx, str(exc)))
        return _html(voice.render(ctx, document))


def _sign_in_routes(router: APIRouter, board: Dashboard) -> None:
    """Signing in with an API key (a session cookie for the pages) and out."""
    @router.get("/login", response_class=HTMLResponse)
    def sign_in_page(request: Request, service: Service) -> Response:
        target = _safe_next(request.query_params.get("next"))
        if open_reads(service.settings):
            return RedirectResponse(target, status_code=303)
        lang = lang_of(request)
        ctx = PageContext(lang=lang, path="/login", query=dict(request.query_params),
                          assets=board.assets.urls, signed_in=False,
                          scripts={k: t(lang, k) for k in ("sign_in_failed", "sign_in_working")})
        body = f"""
<form id="sign-in" class="sign-in" data-next="{e(target)}" autocomplete="off">
<p>{e(t(lang, 'sign_in_explained'))}</p>
<label>{e(t(lang, 'api_key'))} <input type="password" id="api-key" required autofocus></label>
<button type="submit">{e(t(lang, 'sign_in'))}</button>
<p id="sign-in-result" role="status"></p>
</form>"""
        return _html(bare_page(ctx, title=t(lang, "sign_in_title"), body=body))

    @router.post("/dashboard/session")
    def start_session(request: Request, role: str = Depends(require("read"))) -> JSONResponse:
        key = request.headers.get(API_KEY_HEADER, "")
        token = board.sessions.open(role, bucket=key_bucket(key))  # type: ignore[arg-type]
        response = JSONResponse({"role": role}, headers={"Cache-Control": "no-store"})
        response.set_cookie(COOKIE, token, max_age=SESSION_SECONDS, path="/", httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")
        return response

    @router.post("/logout")
    def sign_out(request: Request) -> Response:
        board.sessions.close(request.cookies.get(COOKIE))
        lang = lang_of(request)
        response = RedirectResponse("/login" + ("?lang=zh" if lang == "zh" else ""),
                                    status_code=303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response


def _planner_routes(router: APIRouter, board: Dashboard) -> None:
    """The budget slider's preview and committing a plan."""
    @router.get("/dashboard/api/plan-preview")
    def plan_preview(request: Request, service: Service,
                     budget: Annotated[float | None, Query(ge=0, le=MAX_BUDGET)] = None,
                     curve: bool = False) -> JSONResponse:
        board.api_viewer(request, service)
        state = board.planner.state(service)
        headers = {"Cache-Control": "no-store"}
        if state.status == "preparing":
            return JSONResponse({"status": "preparing"}, status_code=202, headers=headers)
        if state.status == "error" or state.prepared is None:
            return JSONResponse({"status": "error", "message": state.message}, status_code=503,
                                headers=headers)
        prepared = state.prepared
        config = service.project.config
        amount = prepared.max_budget / 4 if budget is None else budget
        if not math.isfinite(amount):
            raise ApiError("invalid_request", "the budget must be a finite amount")
        body = {"status": "ready", "as_of": prepared.inputs.as_of.isoformat(),
                "max_budget": prepared.max_budget,
                "preview": board.planner.preview(prepared, config=config, budget=amount)}
        if curve:
            from churnguard.service.dashboard.charts import budget_curve

            body["curve"] = budget_curve(prepared.curve, lang=lang_of(request))
        return JSONResponse(body, headers=headers)

    @router.post("/dashboard/api/plans", status_code=201)
    def commit_plan(body: PlanCommitIn, service: Service,
                    _role: str = Depends(require("write"))) -> JSONResponse:
        state = board.planner.state(service)
        if state.status != "ready" or state.prepared is None:
            raise ApiError("not_ready", "the planner is still preparing its inputs; retry in a "
                                        "moment")
        try:
            plan = board.planner.commit(service, state.prepared, budget=body.budget,
                                        campaign_id=body.campaign_id)
        except PlanError as exc:
            exists = "already exists" in str(exc)
            raise ApiError("invalid_request",
                           "a plan with this campaign id already exists; choose another id"
                           if exists else "the plan cannot be made; see the server log") from None
        summary = plan.summary
        out = PlanCommitOut(campaign_id=plan.campaign_id, as_of=plan.as_of.isoformat(),
                            budget=plan.budget, treated=int(summary["treated"]),
                            control=int(summary["control"]),
                            expected_saves=float(summary["expected_saves"]),
                            expected_cost=float(summary["expected_cost"]))
        log.info("dashboard committed plan %s", plan.campaign_id)
        return JSONResponse(out.model_dump(), status_code=201,
                            headers={"Cache-Control": "no-store"})


def _static_routes(router: APIRouter, board: Dashboard) -> None:
    """The pages' script, style sheet and Plotly bundle, cached for long (each name holds a
    hash or a version)."""
    @router.get(STATIC_PREFIX + "/{name}")
    def static_file(name: str, request: Request) -> Response:
        found = board.assets.get(name, gzip_ok="gzip" in request.headers.get(
            "accept-encoding", ""))
        if found is None:
            raise ApiError("not_found", "no such resource")
        asset, packed = found
        headers = {"Cache-Control": LONG_CACHE, "X-Content-Type-Options": "nosniff",
                   "Vary": "Accept-Encoding"}
        if packed:
            headers["Content-Encoding"] = "gzip"
        return Response(asset.body, media_type=asset.media_type, headers=headers)
