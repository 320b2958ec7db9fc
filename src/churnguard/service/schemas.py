"""Request and response bodies: input schemas (``*In``) apart from output schemas (``*Out``).

An output never carries a field only because an input had it (STYLE.md #10): the timeline shows
no review or ticket text, and no answer repeats what a failed request held.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

Lang = Literal["en", "zh"]
Tier = Literal["high", "medium", "low"]
Status = Literal["active", "lapsed", "unscorable"]



def _as_utc(value: dt.datetime) -> dt.datetime:
    # The store's timestamps are naive UTC; answers say so (RFC 3339 needs the offset).
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


UtcDatetime = Annotated[dt.datetime, AfterValidator(_as_utc)]

ID_MAX = 256
TEXT_MAX = 10_000


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- events ------------------------------------------------------------------------------------
class EventIn(_In):
    """One event, as in the events data contract (docs/ingest.md). ``ts`` without an offset is
    read in ``ingest.timezone`` (UTC when unset); a batch must not mix both kinds."""

    user_id: str = Field(min_length=1, max_length=ID_MAX)
    ts: dt.datetime
    type: str = Field(min_length=1, max_length=64)
    event_id: str | None = Field(None, min_length=1, max_length=ID_MAX)
    item_id: str | None = Field(None, max_length=ID_MAX)
    category: str | None = Field(None, max_length=ID_MAX)
    amount: float | None = Field(None, allow_inf_nan=False)
    quantity: float | None = Field(None, allow_inf_nan=False)
    text: str | None = Field(None, max_length=TEXT_MAX)
    rating: int | None = Field(None, ge=1, le=5)
    channel: str | None = Field(None, max_length=64)
    session_id: str | None = Field(None, max_length=ID_MAX)

    @field_validator("ts")
    @classmethod
    def _plausible(cls, value: dt.datetime) -> dt.datetime:
        if not 1900 <= value.year < 2200:
            raise ValueError("must fall between the years 1900 and 2200")
        return value


class EventBatchIn(_In):
    events: list[EventIn] = Field(min_length=1)


class EventBatchOut(_Out):
    batch_id: str | None = Field(description="the ingest batch; null when nothing was new")
    received: int
    added: int
    duplicate: int


class EventBatchQueuedOut(_Out):
    """202: the store is lent to a command (a scheduled cycle); the batch is validated and on
    disk in the service's journal, and is stored when the store comes back (docs/service.md)."""

    status: Literal["queued"] = "queued"
    journal_id: str = Field(description="the batch's entry in the service's journal")
    received: int
    store_lent_since: UtcDatetime | None = Field(
        description="since when the store is lent (UTC); null: it is back and earlier "
                    "journaled batches are being stored")
    message: str


# -- risk and scores ---------------------------------------------------------------------------
class RecommendationOut(_Out):
    campaign_id: str
    action: str
    channel: str | None
    message: str | None


class UserRiskOut(_Out):
    user_id: str
    as_of: UtcDatetime = Field(description="the instant (UTC) the features were computed at")
    model_version: str
    status: Status = Field(description="lapsed: no activity in the lookback window, so already "
                                       "churned by the definition; unscorable: the customer's "
                                       "data cannot be featurised (the reason says what to "
                                       "fix); no probability then")
    p_churn: float | None = Field(ge=0, le=1)
    risk_tier: Tier | None
    reasons: list[str]
    recommended_action: RecommendationOut | None


class ScoreIn(_In):
    # One id limit everywhere (docs/service.md): a longer id cannot be stored, so it is refused
    # rather than echoed back.
    user_ids: list[Annotated[str, Field(max_length=ID_MAX)]] = Field(
        min_length=1, description="at most max_score_ids (10,000), each at most 256 characters")
    lang: Lang = "en"


class ScoreRowOut(_Out):
    user_id: str
    status: Literal["active", "lapsed", "unscorable", "unknown"]
    p_churn: float | None = Field(ge=0, le=1)
    risk_tier: Tier | None
    reasons: list[str]


class ScoreOut(_Out):
    model_version: str
    scores: list[ScoreRowOut]


# -- timeline ----------------------------------------------------------------------------------
class TimelineEventOut(_Out):
    event_id: str
    ts: UtcDatetime
    type: str
    item_id: str | None
    category: str | None
    amount: float | None
    quantity: float | None
    rating: int | None
    channel: str | None


class ScoreHistoryOut(_Out):
    as_of: UtcDatetime
    model_version: str
    p_churn: float
    risk_tier: str
    reasons: list[str]


class CampaignReceivedOut(_Out):
    campaign_id: str
    action: str
    is_control: bool
    at: UtcDatetime | None
    channel: str | None
    source: Literal["history", "plan"]
    delivery_status: str | None


class TimelineOut(_Out):
    user_id: str
    signup_ts: UtcDatetime | None
    events_total: int
    events: list[TimelineEventOut] = Field(description="the newest first, up to the limit")
    scores: list[ScoreHistoryOut]
    campaigns: list[CampaignReceivedOut]


# -- models ------------------------------------------------------------------------------------
class ModelOut(_Out):
    version: str
    name: str
    created_at: UtcDatetime
    is_champion: bool
    config: dict[str, Any]  # the model's hyper-parameters and the churn definition
    data_window: dict[str, Any]
    metrics: dict[str, Any]


class AliasChangeOut(_Out):
    version: str
    previous_version: str | None
    changed_at: UtcDatetime
    reason: str


class ModelsOut(_Out):
    champion: str | None
    models: list[ModelOut]
    history: list[AliasChangeOut]


class ChampionOut(_Out):
    champion: str
    previous: str | None
    changed: bool


def _finite_json(value: Any) -> Any:
    """JSON figures with NaN and infinities as null (JSON has no such numbers).

    >>> _finite_json({"a": [1.5, float("nan")], "b": {"c": float("inf")}})
    {'a': [1.5, None], 'b': {'c': None}}
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_json(v) for v in value]
    return value


JsonFigures = Annotated[dict[str, Any], AfterValidator(_finite_json)]
Outcome = Literal["promoted", "kept", "no-evidence", "rolled-back"]


class GateDecisionOut(_Out):
    """One decision of the champion/challenger gate with its evidence (docs/operate.md,
    "The gate")."""

    decision_id: str
    decided_at: UtcDatetime
    trigger: Literal["challenge", "realized", "manual"]
    outcome: Outcome
    champion_version: str | None = Field(description="the champion when the decision was taken")
    challenger_version: str | None = Field(description="the version that would take its place")
    champion_after: str | None = Field(description="the champion after the decision")
    reason: str
    cohort_cutoff: UtcDatetime | None = Field(
        description="the out-of-time cohort the models were compared on")
    n_customers: int | None
    n_churned: int | None
    champion_auc: float | None
    challenger_auc: float | None
    delta_auc: float | None = Field(description="challenger − champion ROC-AUC on the cohort")
    delta_auc_lower: float | None = Field(
        description="one-sided lower bound of ΔAUC at `confidence` (paired bootstrap over "
                    "customers); promotion needs it at least −`tolerance`")
    delta_auc_upper: float | None
    champion_ece: float | None
    challenger_ece: float | None = Field(description="promotion needs it at most `max_ece`")
    tolerance: float | None
    max_ece: float | None
    confidence: float | None
    resamples: int | None
    seed: int | None
    evidence: JsonFigures = Field(description="what else was measured (baselines, windows)")


class GateDecisionsOut(_Out):
    champion: str | None
    decisions: list[GateDecisionOut] = Field(description="oldest first")


class CycleStepOut(_Out):
    step: str
    status: Literal["started", "done", "skipped", "failed"] = Field(
        description="started: running, or the process died in it (the next cycle resumes it); "
                    "skipped: nothing to do, or its inputs did not change since it last ran")
    decision: str | None = Field(description="what the step decided, in one sentence")
    evidence: str | None
    figures: JsonFigures
    error: str | None = Field(description="why a failed step failed")
    fingerprint: str | None = Field(description="sha256 of the step's inputs")
    started_at: UtcDatetime
    finished_at: UtcDatetime | None


class CycleOut(_Out):
    cycle_id: str
    trigger: str = Field(description="cli (`churnguard run`) or schedule (`churnguard serve`)")
    status: Literal["running", "done", "failed"]
    now: UtcDatetime | None = Field(description="the --now asked for (null: the data's now)")
    started_at: UtcDatetime
    finished_at: UtcDatetime | None
    error: str | None
    steps: list[CycleStepOut] = Field(description="in cycle order")


class ScheduleOut(_Out):
    expression: str = Field(description="[operate] schedule, a cron expression in UTC")
    next_fire: UtcDatetime | None = Field(description="when the next scheduled cycle starts")
    running: bool = Field(description="whether this service runs the schedule (false: it was "
                                      "set after the service started)")
    last_error: str | None = Field(description="why the last scheduled cycle failed")


class CyclesOut(_Out):
    cycles: list[CycleOut] = Field(description="newest first")
    schedule: ScheduleOut | None = Field(description="null: no [operate] schedule; cycles run "
                                                     "by `churnguard run`")


# -- campaigns ---------------------------------------------------------------------------------
class PlanIn(_In):
    budget: float = Field(ge=0, le=1e12, description="Most the campaign may spend.")
    campaign_id: str | None = Field(None, min_length=1, max_length=200,
                                    pattern=r"^[A-Za-z0-9._:-]+$")


class ActionSummaryOut(_Out):
    customers: int
    control: int
    expected_saves: float
    expected_cost: float
    expected_margin: float


class CampaignOut(_Out):
    campaign_id: str
    status: str
    created_at: dt.datetime
    as_of: dt.datetime
    budget: float
    treated: int
    control: int
    expected_cost: float
    expected_saves: float
    expected_incremental_margin: float
    per_action: dict[str, ActionSummaryOut]
    uplift_source: str


class GroupResultOut(_Out):
    action: str
    tier: str
    n_treated: int
    n_control: int
    retention_treated: float | None
    retention_control: float | None
    incremental_retention: float | None
    incremental_retention_ci: list[float] | None
    incremental_net_revenue: float | None
    incremental_net_revenue_ci: list[float] | None
    note: str | None = None
    # Adjusted for the plan's churn score (a churnguard plan's campaign; docs/intervene.md)
    incremental_retention_adjusted: float | None = None
    incremental_retention_adjusted_ci: list[float] | None = None


class CampaignResultsOut(_Out):
    campaign_id: str
    outcome_type: str
    window_days: int
    groups: list[GroupResultOut]
    notes: list[str]


# -- erasure and health ------------------------------------------------------------------------
class ErasureOut(_Out):
    erasure_id: str
    erased_at: UtcDatetime
    rows_deleted: dict[str, int]
    files_deleted: int = Field(description="cache files deleted (derived data, rebuilt on use)")
    files_rewritten: list[str] = Field(
        description="exports under the project folder rewritten without the customer's rows")
    files_to_review: list[str] = Field(
        description="other files under the project folder that hold the id as a whole word "
                    "(a report, notes): left as they were, for the operator")
    compacted: bool = Field(
        description="the store file was rewritten, so no freed page keeps the customer's bytes; "
                    "false (answer 202): another process held the file, the rewrite is pending "
                    "and runs at the next erasure or service start (GET /readyz counts them)")


class HealthOut(_Out):
    status: Literal["ok"]


class ReadyOut(_Out):
    status: Literal["ready", "not_ready"]
    store: bool
    champion: str | None
    population: Literal["scored", "pending", "failed"] = Field(
        description="the last scoring of the whole population: scored; pending (not yet: answers "
                    "are computed customer by customer meanwhile); failed (the server log says "
                    "why; the service is not ready)")
    scores_as_of: UtcDatetime | None = Field(
        description="when everyone was last scored (null: not yet; answers are computed "
                    "customer by customer meanwhile)")
    pending_erasures: int = Field(
        ge=0, description="erasures whose store rewrite is still pending (another process held "
                          "the file): their rows are gone, freed pages may still hold bytes")
    reasons_ready: float | None = Field(
        ge=0, le=1, description="share of those answers whose reasons are computed")
    left_out: int = Field(
        0, ge=0, description="customers the last scoring of the population left out because "
                             "their data cannot be featurised (e.g. an amount beyond what the "
                             "features sum; the server log says why): everyone else was scored, "
                             "and their own answers are computed on the spot")


def field_names() -> set[str]:
    """Every field name an input schema declares (error paths may show these, nothing else)."""
    names = {"body", "query", "path", "header"}
    for model in (EventIn, EventBatchIn, ScoreIn):
        names |= set(model.model_fields)
    return names | {"lang", "limit", "user_id", "version"}


# -- the agents' assistant (issue 20 item 5; docs/assistant.md) ---------------------------------
class SimilarTicketOut(_Out):
    ticket_id: str
    opened_at: UtcDatetime
    text: str
    resolved_at: UtcDatetime
    reply: str  # the reply that resolved it
    similarity: float  # the ranking: the blend of text_similarity and the cosine to the reply
    text_similarity: float  # the cosine to the ticket's text alone


class SuggestionOut(_Out):
    template_id: str
    topic: str
    text: str


class AssistOut(_Out):
    user_id: str
    ticket_id: str
    opened_at: UtcDatetime
    text: str | None
    lang: Lang  # the ticket's language, and the reply's
    topic: str | None
    risk_tier: Tier | None  # newest stored score
    p_churn: float | None
    at_risk: bool
    threshold: float
    top_similarity: float | None
    abstained: bool
    similar: list[SimilarTicketOut]
    recommendation: SuggestionOut | None
    alternatives: list[SuggestionOut]


class AssistDecisionIn(_In):
    """What the agent did with the recommended reply: ``accepted`` (give its ``template_id``; the
    log keeps the template filled from the store), ``edited`` (``text``: what was sent, and the
    ``template_id`` it started from, if any) or ``rejected``."""

    decision: Literal["accepted", "edited", "rejected"]
    template_id: str | None = Field(None, min_length=1, max_length=64)
    text: str | None = Field(None, min_length=1, max_length=4000)
    agent: str | None = Field(None, min_length=1, max_length=ID_MAX)


class AssistDecisionOut(_Out):
    assist_id: str
    logged_at: UtcDatetime
    ticket_id: str
    decision: str
    template_id: str | None
    lang: Lang
    sent_text: str | None


class DecisionCountsOut(_Out):
    accepted: int
    edited: int
    rejected: int


class AssistUsageOut(_Out):
    decisions: int
    by_decision: DecisionCountsOut
    acceptance_rate: float | None
    edit_rate: float | None
    rejection_rate: float | None
    abstained: int
    by_lang: dict[str, DecisionCountsOut]
    by_template: dict[str, DecisionCountsOut]
    first_at: UtcDatetime | None
    last_at: UtcDatetime | None
