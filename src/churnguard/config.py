"""Configuration objects (pydantic): what to do, kept apart from the code that does it.

A project's ``churnguard.toml`` is one :class:`ProjectConfig`; every section has defaults, so an
empty file is a valid project.

>>> ProjectConfig().churn.horizon_days
90
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from churnguard.errors import ChurnguardError


class _Section(BaseModel):
    # A typo in churnguard.toml must fail loudly, not be ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChurnDefinition(_Section):
    """At cutoff T the population is every user with an activity event in [T - lookback, T); a
    user is churned when no activity event falls in [T, T + horizon)."""

    activity: tuple[str, ...] = ("order",)
    lookback_days: int = Field(365, gt=0)
    horizon_days: int = Field(90, gt=0)

    @field_validator("activity")
    @classmethod
    def _activity_not_empty(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or any(not v.strip() for v in value):
            raise ValueError("activity must name at least one event type, e.g. ['order']")
        return value


# The largest max_amount may be: amounts up to it sum exactly in the features' DECIMAL(38, 6)
# (which holds 10^32) over any store that fits on a machine.
AMOUNT_CEILING = 1e15


class IngestConfig(_Section):
    """How raw files are normalised before they are stored."""

    # Replace user ids by a keyed hash (HMAC-SHA256) on every table, so the store never holds
    # the shop's own customer ids. The key comes from the environment, never from this file.
    pseudonymise: bool = False
    pseudonym_key_env: str = "CHURNGUARD_PSEUDONYM_KEY"
    # Remove e-mail addresses and phone numbers from free text (reviews, tickets) before storing.
    scrub_text: bool = True
    # The zone that timestamps without an offset are in. Unset: they are read as UTC, but a file
    # that mixes timestamps with and without an offset is rejected as ambiguous.
    timezone: str | None = None
    # Bounds on numbers (docs/ingest.md): an amount, price or cost is at most max_amount in size
    # and a quantity at most max_quantity; a row outside them is bad. The ceilings keep every sum
    # the features take exact (DECIMAL(38, 6) holds 10^32): one absurd value must never stop
    # the scoring of the whole shop.
    max_amount: float = Field(1e10, gt=0, le=AMOUNT_CEILING)
    max_quantity: float = Field(1e6, gt=0, le=1e9)
    # Numbers written as text with a decimal comma and '.' or ' ' between thousands (1.234,50),
    # as European exports write them. Off: '.' is the decimal mark and ',' groups thousands.
    decimal_comma: bool = False
    # User and item attribute columns declared to hold contact details (e-mail addresses, phone
    # numbers, identity numbers): stored as HMAC pseudonyms (the key of pseudonym_key_env). Any
    # other attribute value holding such details makes its row bad.
    pseudonymised_attributes: tuple[str, ...] = ()
    # Events dated later than the time of the ingest plus max_future_minutes are bad rows (the
    # minutes allow for clocks that run a little ahead): one wrong clock must not move "now" for
    # every customer. "allow" turns the check off; a simulated shop (simulation.truth set) lives
    # on its own calendar, which may run past today, so there "allow" is the default.
    future_events: Literal["reject", "allow"] = "reject"
    max_future_minutes: int = Field(10, ge=0, le=7 * 24 * 60)

    @property
    def naive_timezone(self) -> str:
        """The zone naive timestamps are read in."""
        return self.timezone or "UTC"


class ScoringConfig(_Section):
    """Risk tiers from the calibrated churn probability: high >= high, medium >= medium."""

    high: float = Field(0.7, gt=0, le=1)
    medium: float = Field(0.4, gt=0, le=1)
    lang: str = "en"

    @model_validator(mode="after")
    def _ordered(self) -> ScoringConfig:
        if self.medium > self.high:
            raise ValueError(f"medium ({self.medium}) must not exceed high ({self.high})")
        if self.lang not in ("en", "zh"):
            raise ValueError(f"lang must be 'en' or 'zh', not {self.lang!r}")
        return self


class Action(_Section):
    """One action of the catalogue. ``kind`` says how its cost arises:

    * ``recommendation`` and ``outreach``: ``cost`` per contact, paid on contact;
    * ``coupon``: ``discount`` x the customer's expected basket, paid only when redeemed.
    ``capacity`` caps how many customers one campaign may give the action (None: no cap);
    ``daily_capacity`` is the same cap per day of the campaign (customer-service calls).
    """

    name: str = Field(min_length=1)
    kind: Literal["recommendation", "coupon", "outreach"]
    cost: float = Field(0.0, ge=0)
    discount: float = Field(0.0, ge=0, lt=1)
    channel: str = "email"
    capacity: int | None = Field(None, ge=0)
    daily_capacity: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _priced(self) -> Action:
        if self.name == NO_ACTION:
            raise ValueError(f"'{NO_ACTION}' is implicit (doing nothing); do not list it")
        if self.kind == "coupon" and self.discount <= 0:
            raise ValueError(f"coupon action {self.name!r} needs a discount > 0, e.g. 0.10")
        return self


NO_ACTION = "none"

DEFAULT_ACTIONS: tuple[Action, ...] = (
    Action(name="recommendation", kind="recommendation", cost=0.05, channel="email"),
    Action(name="coupon_5", kind="coupon", discount=0.05, channel="email"),
    Action(name="coupon_10", kind="coupon", discount=0.10, channel="email"),
    Action(name="coupon_20", kind="coupon", discount=0.20, channel="email"),
    Action(name="cs_outreach", kind="outreach", cost=4.0, channel="phone", daily_capacity=500),
)


class InterveneConfig(_Section):
    """The action catalogue, eligibility rules and campaign settings (docs/intervene.md)."""

    actions: tuple[Action, ...] = DEFAULT_ACTIONS
    # Outcome the actions aim at: an event of this type within the window after contact.
    outcome_type: str = "order"
    window_days: int = Field(90, gt=0)
    # Share of the expected incremental revenue that is margin (what a saved order earns).
    gross_margin: float = Field(0.4, gt=0, le=1)
    control_share: float = Field(0.10, ge=0, lt=1)
    # Share of the plan's contacts given at random where the effects are least known (Thompson
    # sampling over per-risk-tier effect beliefs; docs/intervene.md, "Exploration"); 0: none.
    explore_share: float = Field(0.1, ge=0, le=0.5)
    # Key of the hash that assigns control customers; the same key and campaign id give the
    # same control group on a rerun. Read from this environment variable when it is set.
    control_key_env: str = "CHURNGUARD_CONTROL_KEY"
    campaign_days: int = Field(1, gt=0)  # days the campaign runs (daily capacities scale by it)
    # Eligibility: no contact within cooldown_days of the last one; at most max_coupons coupons
    # per coupon_period_days; no coupons for customers who returned more than this share of
    # their orders.
    cooldown_days: int = Field(30, ge=0)
    max_coupons: int = Field(1, ge=0)
    coupon_period_days: int = Field(90, gt=0)
    heavy_returner_share: float = Field(0.5, gt=0, le=1)
    # User attributes that grant consent (a false value excludes the customer from contact).
    consent_columns: tuple[str, ...] = ("contact_ok",)
    # Effects (change in P(outcome in the window)) assumed by risk tier when the store holds no
    # randomised campaign to learn from. Cautious guesses: replace them by measured ones.
    prior_effects: dict[str, dict[str, float]] = Field(default_factory=lambda: {
        "recommendation": {"high": 0.01, "medium": 0.01, "low": 0.005},
        "coupon_5": {"high": 0.01, "medium": 0.01, "low": 0.005},
        "coupon_10": {"high": 0.02, "medium": 0.015, "low": 0.005},
        "coupon_20": {"high": 0.03, "medium": 0.02, "low": 0.01},
        "cs_outreach": {"high": 0.05, "medium": 0.03, "low": 0.0},
    })

    @model_validator(mode="after")
    def _unique(self) -> InterveneConfig:
        names = [a.name for a in self.actions]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"action names must be unique; repeated: {', '.join(repeated)}")
        return self


# -- [uplift]: how campaigns are pooled and a learner chosen (docs/intervene.md, "Pooling") -----
class UpliftConfig(_Section):
    """Pooling of campaigns and the learner chooser's rule (docs/intervene.md)."""

    # A campaign this many days older than the newest counts half as much (a quarter at twice).
    half_life_days: float = Field(365.0, gt=0)
    # `auto` keeps a simpler learner unless a richer one beats it in at least this share of the
    # paired bootstrap replicates over customers.
    choice_confidence: float = Field(0.95, ge=0.5, lt=1)
    bootstrap_replicates: int = Field(200, ge=20)
    # A plan keeps the learner an earlier plan chose (out of fold, among all six) for this many
    # days and cross-fits only that one, for the recalibration; the choice is most of a plan's
    # cost and grows with the campaign history. 0: choose again at every plan.
    choose_every_days: int = Field(28, ge=0)
    # How the recalibrated effects are shrunk across the actions before a plan uses them:
    # empirical Bayes posterior means (each action's average effect and slope pulled toward the
    # actions' pooled ones by its standard error), or none (docs/intervene.md, "Shrinkage").
    shrinkage: Literal["empirical_bayes", "none"] = "empirical_bayes"


class SimulationConfig(_Section):
    """Set by `churnguard demo`: where the simulator's ground truth lies, for the oracle."""

    truth: str | None = None


class BehaviourSettings(_Section):
    """Hyper-parameters of the behaviour models that ``train`` and ``backtest`` build
    (``behaviour``, ``behaviour+gbdt``, the supervised controls ``behaviour_gru`` and
    ``behaviour_transformer``, and the behaviour member of ``ensemble``). A key left out keeps
    the model's default (docs/behaviour.md); keys a model does not have are not passed to it
    (``behaviour+gbdt`` does not fine-tune, so ``epochs``, ``tune_text`` and ``text_lr`` are
    the fine-tuned model's only).

    ``pretrain``: "auto" (pretrain inside training) or an encoder file written by
    ``churnguard pretrain``, relative to the project folder (the encoder's shape is then the
    file's). Training from scratch is what the supervised controls do, under their own names.
    The controls keep their own encoder and never pretrain.
    """

    encoder: Literal["gru", "transformer"] | None = None
    d_model: int | None = Field(None, gt=0)
    n_layers: int | None = Field(None, ge=1)
    max_len: int | None = Field(None, ge=1)
    use_text: bool | None = None
    pretrain: str | None = Field(None, min_length=1)
    pretrain_epochs: int | None = Field(None, ge=1)
    pretrain_max_customers: int | None = Field(None, ge=4)
    epochs: int | None = Field(None, ge=1)
    tune_text: bool | None = None
    text_lr: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> BehaviourSettings:
        if self.pretrain == "none":
            raise ValueError('pretrain = "none" trains from scratch, which is what the '
                             "supervised controls do: backtest or train behaviour_gru or "
                             'behaviour_transformer instead, or use "auto" or an encoder file')
        if self.tune_text and self.use_text is False:
            raise ValueError("tune_text = true fine-tunes the text encoder, which use_text = "
                             "false leaves out; drop one of them")
        return self

    def given(self) -> dict[str, object]:
        """The keys churnguard.toml sets, with their values."""
        return self.model_dump(exclude_none=True)


class ModelsConfig(_Section):
    """Settings of the models that ``train`` and ``backtest`` build by name."""

    behaviour: BehaviourSettings = BehaviourSettings()


# -- [gate]: the champion/challenger gate (docs/operate.md, "The gate") ----------------------------
class GateConfig(_Section):
    """When a challenger replaces the champion, and when a promoted one is rolled back.

    A challenger is promoted when the one-sided ``confidence`` lower bound of the paired ΔAUC
    (challenger − champion, bootstrap over the customers of the newest matured out-of-time
    cohort, ``resamples`` resamples from ``seed``) is at least ``-tolerance`` and its ECE on that
    cohort is at most ``max_ece`` or at most the champion's there. A promoted champion is rolled back when the previous one beats
    it on a later cohort by more than ``tolerance`` at the same confidence. A cohort with fewer
    than ``min_class_size`` churned or retained customers is no evidence. Without a champion,
    the first challenger (of kind ``model``) must be calibrated (ECE at most ``max_ece``, mean
    probability within ``max_mean_gap`` of the churn rate) and beat the recency rule and BTYD by
    ``baseline_margin`` ROC-AUC.
    """

    tolerance: float = Field(0.005, ge=0, lt=0.5)
    confidence: float = Field(0.95, gt=0.5, lt=1)
    max_ece: float = Field(0.03, gt=0, le=1)
    resamples: int = Field(1000, ge=100, le=100_000)
    seed: int = Field(0, ge=0)
    min_class_size: int = Field(30, ge=1)
    model: str = Field("gbdt", min_length=1)
    baseline_margin: float = Field(0.01, ge=0, lt=0.5)
    max_mean_gap: float = Field(0.03, gt=0, le=1)


# -- [operate]: the operating cycle (docs/operate.md, "The cycle") -------------------------------
class OperateConfig(_Section):
    """The operating cycle (`churnguard run`, and `churnguard serve` on a schedule;
    docs/operate.md)."""

    # Folder the shop drops export files into, relative to the project folder (docs/operate.md:
    # sub-folders by kind, files ingested once by content).
    inbox: str = Field("inbox", min_length=1)
    # What ingest does with bad rows of an inbox file (as `churnguard ingest --on-error`).
    on_error: Literal["reject", "skip", "quarantine"] = "reject"
    # When `churnguard serve` runs a cycle: a 5-field cron expression in UTC, e.g. "0 6 * * mon"
    # (Mondays at 06:00). Unset: the service runs none (`churnguard run` from cron instead).
    schedule: str | None = Field(None, min_length=1)
    # Plan a campaign when the newest plan is this many days old (by the data's clock), with at
    # most this budget. No budget: the cycle plans nothing.
    plan_every_days: int = Field(7, gt=0)
    plan_budget: float | None = Field(None, ge=0)
    # Train a challenger when the champion is this many days old (or drift says so).
    retrain_every_days: int = Field(28, gt=0)
    # The model a project without any trains first (a name from the model catalogue).
    first_model: str = Field("gbdt", min_length=1)
    # Send each plan the cycle makes, exactly once: to deliver_webhook when set, else to
    # deliver_out/CAMPAIGN.jsonl (relative to the project folder).
    deliver: bool = False
    deliver_webhook: str | None = Field(None, min_length=1)
    deliver_out: str = Field("outbox", min_length=1)
    # How much lower than the service's the CPU priority of its scheduled cycles is (`nice`):
    # `churnguard serve` runs each as `churnguard run` in a child process (docs/operate.md).
    cycle_nice: int = Field(10, ge=0, le=19)


# -- [monitor] (issue 18 item 3; docs/monitor.md) -------------------------------------------------
class MonitorConfig(_Section):
    """``churnguard monitor``: drift with thresholds calibrated by bootstrap at the batch size,
    Benjamini–Hochberg across features, realized metrics on matured cohorts and the label alarm
    on the newest of them."""

    # False discovery rate of the drift alarms: on unchanged data, at most this share of the
    # batches raises any alarm (so at most this share of the feature checks alarms).
    fdr: float = Field(0.01, gt=0, lt=1)
    # Bootstrap draws of the null at the batch size (the tail beyond them is a fitted gamma).
    bootstrap: int = Field(500, ge=50, le=100_000)
    statistic: Literal["psi", "js"] = "psi"
    # The reference: "lag" (the population reference_lag_days before the batch: 7 compares each
    # week with the one before) or "champion" (its training window; the lag population when
    # there is no champion or no recorded window). "lag" by default: on a stable simulated shop
    # the champion's window alarmed on 56% of the weekly feature checks, since the inputs that
    # grow with the shop's age and season really move (docs/operate.md, "The monitor").
    reference: Literal["champion", "lag"] = "lag"
    reference_lag_days: int = Field(7, gt=0)
    # "last_year": where the store holds the same weeks a year earlier, ask whether the batch
    # moved beyond how those weeks moved then (a festival season moves the inputs every year:
    # 4.3% of the weekly checks alarmed in November and December on a stable 20,000-customer
    # shop without it; docs/monitor.md, "The season"); "off": the plain check always.
    season: Literal["last_year", "off"] = "last_year"
    # Days of events the store must hold before last year's earliest cutoff, so that last
    # year's features read as full a history as this year's: the longest window of the built-in
    # features is 360 days (orders_prev_180d). With 180, a 20,000-customer replay alarmed in
    # the first weeks it applied, on the 180-day windows (docs/monitor.md, "The season").
    season_history_days: int = Field(365, ge=0)
    # At most this many reference rows (a seeded sample), to bound the feature computation.
    reference_rows: int = Field(20_000, ge=100)
    # A campaign assignment this many days before a cohort's cutoff can still change its
    # outcome: such treated customers are left out of the realized metrics too.
    treatment_window_days: int = Field(90, ge=0)
    # Inputs not checked for drift (e.g. tenure_days, which grows with the age of the data).
    ignore: tuple[str, ...] = ()
    seed: int = 0
    # The label alarm (monitor/performance.py) on the newest matured scoring run: at most this
    # chance of an alarm per pass when the model holds (split over its two tests) ...
    label_alpha: float = Field(0.01, gt=0, lt=1)
    # ... where "holds" means: churn rate within this of the mean probability (the gate's
    # max_ece: calibration in the large never exceeds the ECE) ...
    label_rate_tolerance: float = Field(0.03, ge=0, lt=1)
    # ... and ROC-AUC at most this below what its probabilities promise (issue 18's material
    # loss, the margin by which a retrained model must beat a stale one).
    label_auc_tolerance: float = Field(0.02, ge=0, lt=1)
    # Fewer evaluable customers in the cohort: no label check (too little to test).
    label_min_customers: int = Field(200, ge=10)


# -- [text] and [voice] (issue 20 items 1-3; docs/voice.md) ---------------------------------------
class TextConfig(_Section):
    """How texts become vectors for the voice of the customer (topics)."""

    # "use": the multilingual Universal Sentence Encoder for every text (one space for Chinese
    # and English); "bilingual": MiniLM for English, the shop's character n-gram encoder for
    # Chinese. "use" by measurement (RESULTS.md "voice"): better topics on unseen phrasings
    # in Chinese and mixed texts, fast enough (>= 500 texts/s on the Chinese path). The event
    # tokens (sequence caches) keep the store's recorded encoder: docs/voice.md.
    encoder: Literal["use", "bilingual"] = "use"


class VoiceConfig(_Section):
    """Sentiment learned from the shop's rated reviews, and the topic codebook."""

    # Fewer rated (1-2 or 4-5 star) reviews of a language, or fewer than a quarter of it in the
    # smaller class: that language's sentiment comes from the packaged fallback (snownlp for
    # Chinese, VADER for English) instead of being learned.
    min_rated_reviews: int = Field(200, ge=20)
    # Try the learned sentiment stacked with the fallback package's score (snownlp, VADER); kept
    # per language only when 5-fold cross-validation on the rated reviews says it is better
    # (docs/voice.md). False: the learned model alone.
    stack_package: bool = True
    # Clusters per script path (Chinese, other): more than the topics a shop has, since texts
    # group by topic, sentiment and kind (praise and complaints of each topic, tickets).
    clusters: int = Field(12, ge=2, le=200)
    # A text whose cosine to its nearest centroid is below Q1 - abstain_iqr x IQR of the fitting
    # texts' cosines to their own centroids (Tukey's fence) abstains: no topic.
    abstain_iqr: float = Field(1.5, ge=0)
    seed: int = 0
    # Names of topics by key (e.g. zh03 = "物流慢"); unnamed topics show their keyphrases. Two
    # keys with the same name are one topic.
    topic_names: dict[str, str] = {}
    # Alerts on negative surges (churnguard.voice.alerts; docs/voice.md "Alerts"). The
    # Benjamini-Hochberg level across the topics tested on one day: on a day with no surge at
    # all, the chance of any alert is about this at most, so a topic alone in its day sees about
    # 91 x this false alerts a quarter. 0.001, not 0.0025 (= 0.25 / 91, the line):
    # on overdispersed negative binomial series the tests' p-values run up to about twice too
    # small (the dispersion is estimated on 8 weeks), measured in tests/voice/test_alerts.py.
    alert_fdr: float = Field(0.001, gt=0, lt=1)
    # The baseline: the same weekday in each of this many weeks before the day (the dispersion
    # is fitted on all days of those weeks).
    baseline_weeks: int = Field(8, ge=2, le=52)
    # A "small" topic has fewer negative mentions a day than this in its baseline: it is tested
    # per week (Monday to Sunday, on the Sunday) against the weekly sums of its baseline weeks,
    # not per day (a day of 2 against 1 says little; a week of 14 against 7 says more).
    weekly_below: float = Field(5.0, ge=0)
    # Alerts are listed for the days of this window ending on the as-of day.
    alert_days: int = Field(28, ge=1, le=3660)
    # The alert's audience: its authors whose newest risk tier is one of these.
    audience_tiers: tuple[Literal["high", "medium", "low"], ...] = ("high", "medium")


# -- [assistant] (issue 20 item 5; docs/assistant.md) ---------------------------------------------
class AssistantConfig(_Section):
    """The agents' assistant: similar resolved tickets, a recommended reply, the abstain rule."""

    # Similar resolved tickets shown per open ticket.
    k: int = Field(3, ge=1, le=20)
    # The encoder of each route's retrieval (a ticket goes by its majority script): "use", the
    # multilingual Universal Sentence Encoder, or "bilingual" (MiniLM for English, the shop's
    # character n-gram encoder for Chinese). The defaults by measurement (RESULTS.md
    # "assistant": the higher hit@3 on tickets written with sentences the base never saw).
    encoder_en: Literal["use", "bilingual"] = "bilingual"
    encoder_zh: Literal["use", "bilingual"] = "use"
    # A resolved ticket's similarity blends its text's and its reply's: (1 - reply_weight) x
    # cosine to the ticket + reply_weight x cosine to the reply that resolved it (0: the ticket
    # text alone, as before). 0.75: the pick of nested held-out phrasings inside the bases of
    # benchmarks/bench_assistant.py, not of its test queries (docs/assistant.md).
    reply_weight: float = Field(0.75, ge=0, le=1)
    # Abstain when the most similar resolved ticket is less similar (cosine) than the route's
    # threshold (on the route's encoder's scale). Unset, it
    # is chosen from the store's own resolved tickets: the similarity that answer_share of them
    # reach to their most similar other resolved ticket (so about that share of new tickets like
    # them get an answer); a number here overrides it. docs/assistant.md has the measurements.
    min_similarity_en: float | None = Field(None, ge=-1, le=1)
    min_similarity_zh: float | None = Field(None, ge=-1, le=1)
    answer_share: float = Field(0.95, gt=0, lt=1)
    # Risk tiers the assistant calls at risk (the panel and the answer say so).
    at_risk_tiers: tuple[str, ...] = ("high", "medium")


class ProjectConfig(_Section):
    assistant: AssistantConfig = AssistantConfig()
    churn: ChurnDefinition = ChurnDefinition()
    ingest: IngestConfig = IngestConfig()
    scoring: ScoringConfig = ScoringConfig()
    simulation: SimulationConfig = SimulationConfig()
    intervene: InterveneConfig = InterveneConfig()
    uplift: UpliftConfig = UpliftConfig()
    models: ModelsConfig = ModelsConfig()
    gate: GateConfig = GateConfig()
    operate: OperateConfig = OperateConfig()
    monitor: MonitorConfig = MonitorConfig()
    text: TextConfig = TextConfig()
    voice: VoiceConfig = VoiceConfig()

    @model_validator(mode="after")
    def _simulated_calendar(self) -> ProjectConfig:
        # The simulator's world starts on a fixed date and may run past today (the demo's two
        # years end 2027-01-01): its events are not from a wrong clock. Set explicitly, the
        # [ingest] setting wins.
        if self.simulation.truth and "future_events" not in self.ingest.model_fields_set:
            object.__setattr__(self, "ingest",
                               self.ingest.model_copy(update={"future_events": "allow"}))
        return self


class ConfigError(ChurnguardError, ValueError):
    """churnguard.toml is missing, unreadable or invalid."""

    code = "invalid_config"


def load_config(path: Path) -> ProjectConfig:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: not found; run `churnguard init` to create a project") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return ProjectConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from exc


def dump_config(config: ProjectConfig) -> str:
    return tomli_w.dumps(config.model_dump(mode="json", exclude_none=True))


# What `churnguard init` writes: the defaults, spelled out and explained (new_project.toml).
NEW_PROJECT_TOML = (resources.files("churnguard") / "new_project.toml").read_text(encoding="utf-8")
