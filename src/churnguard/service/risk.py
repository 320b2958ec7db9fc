"""Real-time risk: answers "how likely is this customer to churn, as of now?" fast and fresh.

Scoring one customer through the library (features, model, SHAP reasons) costs tens to hundreds
of milliseconds, mostly fixed per call, so answering every request that way would cap the
service at a few dozen requests a second. Instead:

* everyone in the population is scored at once, set-based, at the start and every
  ``refresh_seconds``: first the probabilities (seconds), then the reasons in every language,
  in chunks, riskiest customers first (TreeSHAP costs about 10 ms a customer, so this takes
  minutes for a large shop; until a customer's reasons are in, their answer is computed on the
  spot, and after a refresh the previous reasons stand in until the new ones arrive);
* a customer whose events arrive after that (``POST /v1/events``) is marked, and their next
  request is scored from their own events on the spot (:class:`~churnguard.realtime.
  CustomerScratch`), so new events count at once; the result is kept until the next mark;
* a promotion or rollback through the API drops everything and rescores in the background;
  until then every customer is scored on the spot with the new champion;
* a cycle (or a command given the store) that ingested events leaves the answers standing and
  rescores everyone in the background; one that changed the champion has everyone scored and
  explained with it in the background and swapped in whole (:meth:`RiskBook.swap`): dropping
  every answer at once would make every request compute on the spot meanwhile;
* the background scoring and explaining leave one core to the requests: its model calls run on
  at most ``cores - 1`` OpenMP threads (:func:`background_threads`). LightGBM's TreeSHAP runs
  without the GIL on every core otherwise, and on two cores the event loop then waits hundreds
  of milliseconds to run again (benchmarks/RESULTS.md "cycle_serve").

So an answer is never older than the customer's newest event posted to the service (events a
cycle or a large command ingests count once the background rescoring is in); between refreshes
only the clock moves on (``as_of`` in the answer says when it was computed).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from churnguard.config import ChurnDefinition, ProjectConfig
from churnguard.explain import reason_context
from churnguard.models.base import ChurnModel
from churnguard.realtime import (
    LANGS,
    CustomerRisk,
    CustomerScratch,
    customers_touched_since,
    explain_rows,
    known_customers,
    lapsed_sentence,
    probabilities,
)
from churnguard.registry import (
    CHAMPION,
    alias_version,
    get_model_version,
    load_model,
    trained_definition,
)
from churnguard.scoring import isolated_snapshot
from churnguard.service.store_pool import Lend, StorePool
from churnguard.snapshots import Snapshot
from churnguard.store import Store

log = logging.getLogger("churnguard.service")

EXPLAIN_CHUNK = 512  # customers explained at a time by the background scorer
# A command that gave the store back with new events for at most this many customers: their
# next answers are computed on the spot; for more, the background refresh rescores everyone.
MARK_AT_MOST = 500


@dataclass(frozen=True, kw_only=True)
class _ExplainJob:
    ticket: tuple[int, int]
    model: ChurnModel
    snapshot: Snapshot
    context: pd.DataFrame | None
    order: np.ndarray


@dataclass(frozen=True, kw_only=True)
class Champion:
    version: str
    model: ChurnModel
    features: list[str]
    definition: ChurnDefinition  # the one it was trained with (else churnguard.toml's)


class RiskBook:
    """What is known about everyone's risk, and which customers changed since.

    A sequence number orders marks (new events) and computations: an answer computed from a
    store read that began before a customer's newest mark is never used for that customer.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = 0
        self._generation = 0  # bumped when the champion changes: older answers are void
        self._marks: dict[str, int] = {}
        self._fresh: dict[str, tuple[CustomerRisk, int]] = {}
        self._table: dict[str, CustomerRisk] | None = None
        self._known: set[str] = set()
        # In the population but left out of its scoring (their data cannot be featurised):
        # never "lapsed", their answers are computed on the spot.
        self._left_out: set[str] = set()
        self._table_seq = 0
        self.table_as_of: dt.datetime | None = None
        self.table_version: str | None = None
        self.reasons_done = 0

    def ticket(self) -> tuple[int, int]:
        """(sequence, generation) to pass back with what is computed from a read begun now."""
        with self._lock:
            self._seq += 1
            return self._seq, self._generation

    def mark(self, user_ids: Sequence[str]) -> None:
        with self._lock:
            self._seq += 1
            for u in user_ids:
                self._marks[u] = self._seq
                self._fresh.pop(u, None)

    def forget(self, user_id: str) -> None:
        self.mark([user_id])
        with self._lock:
            if self._table is not None:
                self._table.pop(user_id, None)
            self._known.discard(user_id)

    def void(self) -> None:
        """The champion changed: nothing known so far holds."""
        with self._lock:
            self._generation += 1
            self._fresh.clear()
            self._table = None
            self._known = set()
            self._left_out = set()
            self.table_as_of = self.table_version = None

    def lookup(self, user_id: str, *, without_reasons: bool = False,
               ) -> tuple[str, CustomerRisk | None]:
        """("hit", risk), ("lapsed", None): known but outside the population, ("unknown", None):
        the store does not know the customer, or ("miss", None): it must be computed.

        ``without_reasons``: a scored customer whose reasons are not computed yet is a hit
        with no reasons (while the store is lent, nothing can compute them)."""
        with self._lock:
            fresh = self._fresh.get(user_id)
            if fresh is not None:
                return "hit", fresh[0]
            if self._table is None or self._marks.get(user_id, 0) > self._table_seq \
                    or user_id in self._left_out:
                return "miss", None
            risk = self._table.get(user_id)
            if risk is not None:
                return ("hit", risk) if risk.reasons or without_reasons else ("miss", None)
            if user_id in self._known:
                return "lapsed", CustomerRisk(
                    user_id=user_id, as_of=self.table_as_of, model_version=self.table_version,
                    status="lapsed", p_churn=None, risk_tier=None)
            return "unknown", None

    def keep(self, risk: CustomerRisk, ticket: tuple[int, int]) -> None:
        seq, generation = ticket
        with self._lock:
            if generation == self._generation and self._marks.get(risk.user_id, 0) <= seq:
                self._fresh[risk.user_id] = (risk, seq)

    def install(self, scored: dict[str, CustomerRisk], known: set[str], *, as_of: dt.datetime,
                version: str, ticket: tuple[int, int], left_out: set[str] | None = None) -> bool:
        seq, generation = ticket
        with self._lock:
            if generation != self._generation:
                return False
            self._table, self._known, self._table_seq = scored, known, seq
            self._left_out = set(left_out or ())
            self.table_as_of, self.table_version = as_of, version
            self.reasons_done = 0
            self._marks = {u: s for u, s in self._marks.items() if s > seq}
            self._fresh = {u: v for u, v in self._fresh.items() if v[1] > seq}
            return True

    def swap(self, scored: dict[str, CustomerRisk], known: set[str], *, as_of: dt.datetime,
             version: str, ticket: tuple[int, int], left_out: set[str] | None = None) -> bool:
        """A new champion's complete answers (reasons in) replace everything at once: what
        :meth:`void` then :meth:`install` and :meth:`fill` do, without the moment in between
        when no answer is known. False (nothing changed) when the champion changed again since
        ``ticket`` was taken."""
        seq, generation = ticket
        with self._lock:
            if generation != self._generation:
                return False
            self._generation += 1
            self._table, self._known, self._table_seq = scored, set(known), seq
            self._left_out = set(left_out or ())
            self.table_as_of, self.table_version = as_of, version
            self.reasons_done = len(scored)
            self._marks = {u: s for u, s in self._marks.items() if s > seq}
            self._fresh = {}
            return True

    def fill(self, said: dict[str, dict[str, tuple[str, ...]]], ticket: tuple[int, int]) -> bool:
        """Add reasons to the installed answers; False once the table was replaced or voided."""
        seq, generation = ticket
        with self._lock:
            if generation != self._generation or self._table is None \
                    or self._table_seq != seq:
                return False
            for user_id, reasons in said.items():
                risk = self._table.get(user_id)
                if risk is not None and self._marks.get(user_id, 0) <= seq:
                    self._table[user_id] = replace(risk, reasons=reasons)
            self.reasons_done += len(said)
            return True

    def previous_reasons(self, version: str) -> dict[str, dict[str, tuple[str, ...]]]:
        """The reasons of the installed answers of ``version`` (stand-ins after a refresh)."""
        with self._lock:
            if self._table is None or self.table_version != version:
                return {}
            return {u: r.reasons for u, r in self._table.items() if r.reasons}

    def known_but_not_in(self, known: frozenset[str]) -> list[str]:
        """Customers the book knows that ``known`` (the store now) does not: erased."""
        with self._lock:
            table = set(self._table or ()) | self._known | set(self._fresh)
        return sorted(table - known)

    @property
    def ready(self) -> bool:
        return self._table is not None

    @property
    def reasons_progress(self) -> float | None:
        """Share of the population whose reasons are computed (None: nothing installed)."""
        with self._lock:
            if self._table is None:
                return None
            return min(1.0, self.reasons_done / len(self._table)) if self._table else 1.0


def background_threads() -> int:
    """OpenMP threads for the background scoring: every core this process may use but one
    (at least one), so a request finds a core free."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


def _reasons(left_out: dict[str, str]) -> str:
    """The distinct reasons customers were left out for (they name no customer)."""
    return "; ".join(sorted(set(left_out.values())))


class RiskService:
    """Computes and caches risk answers for the routers."""

    def __init__(self, *, pool: StorePool, config: ProjectConfig,
                 clock: Callable[[Store], dt.datetime]) -> None:
        self.pool, self.config, self.clock = pool, config, clock
        self.book = RiskBook()
        # Why the last scoring of the whole population failed (None: it did not).
        self.population_error: str | None = None
        # How many customers the last scoring of the population left out because their data
        # cannot be featurised (scoring.isolated_snapshot); everyone else was scored.
        self.population_left_out = 0
        self._champion: Champion | None = None
        self._champion_lock = threading.Lock()
        self._scratch: CustomerScratch | None = None
        self._scratch_lock = threading.Lock()
        self._refresh = threading.Event()
        self._swap = threading.Event()  # the next refresh swaps in a new champion (whole)
        self._stop = threading.Event()
        self._explained = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the champion ----------------------------------------------------------------------------
    def champion(self, store: Store) -> Champion | None:
        with self._champion_lock:
            if self._champion is None:
                version = alias_version(store, CHAMPION)
                if version is None:
                    return None
                found = get_model_version(store, version)
                self._champion = Champion(
                    version=version, model=load_model(store, version),
                    features=list(found.features),
                    definition=trained_definition(found) or self.config.churn)
            return self._champion

    def champion_changed(self) -> None:
        """A new champion (an API promotion or rollback): nothing known holds; every answer is
        computed on the spot with it until everyone is rescored in the background."""
        with self._champion_lock:
            self._champion = None
        self.book.void()
        self._refresh.set()

    def champion_replaced(self) -> None:
        """A cycle or a command changed the champion: score and explain everyone with it in the
        background, then swap all the answers at once (:meth:`RiskBook.swap`). Until then the
        previous champion's answers stand (each says its model version), so a large population
        is never answered on the spot all at once: that took seconds per request at 20,000
        customers (benchmarks/RESULTS.md, "cycle")."""
        self._swap.set()
        self._refresh.set()

    def events_changed(self) -> None:
        """A cycle in this process ingested events: rescore everyone in the background; the
        answers stand until the new ones are installed (the previous reasons stand in until
        the new ones are computed, as after every refresh)."""
        self._refresh.set()

    # -- answers ----------------------------------------------------------------------------
    def cached(self, user_id: str, *, lent: bool = False) -> tuple[str, CustomerRisk | None]:
        """The answer known without reading the store: ("hit", risk) (lapsed customers
        included), ("unknown", None), or ("miss", None) when it must be computed.

        ``lent``: the store is lent to a command, so a scored customer whose reasons are not
        computed yet is answered without them rather than waiting for the store."""
        state, risk = self.book.lookup(user_id, without_reasons=lent)
        if state == "lapsed":
            champion = self._champion
            definition = self.config.churn if champion is None else champion.definition
            return "hit", replace(risk, reasons={
                lang: (lapsed_sentence(definition, lang),) for lang in LANGS})
        return state, risk

    def risk(self, store: Store, user_id: str) -> CustomerRisk | None:
        """The customer's risk as of now; None for a customer the store does not know.

        Raises LookupError when there is no champion model."""
        return self.risks(store, [user_id]).get(user_id)

    def risks(self, store: Store, user_ids: Sequence[str]) -> dict[str, CustomerRisk]:
        out: dict[str, CustomerRisk] = {}
        missing = []
        for user_id in user_ids:
            state, risk = self.cached(user_id)
            if state == "miss":
                missing.append(user_id)
            elif risk is not None:
                out[user_id] = risk
        if missing:
            out.update(self.compute(store, missing))
        return out

    def compute(self, store: Store, user_ids: Sequence[str]) -> dict[str, CustomerRisk]:
        """Score these customers from their own events, now, and keep the answers."""
        champion = self.champion(store)
        if champion is None:
            raise LookupError("no champion model")
        ticket = self.book.ticket()
        as_of = self.clock(store)
        with self._scratch_lock:
            if self._scratch is None:
                self._scratch = CustomerScratch(store)
            risks = self._scratch.score(
                store, user_ids, definition=champion.definition, tiers=self.config.scoring,
                as_of=as_of, version=champion.version, model=champion.model,
                features=champion.features)
        for risk in risks.values():
            self.book.keep(risk, ticket)
        return risks

    def forget(self, user_id: str) -> None:
        self.book.forget(user_id)
        with self._scratch_lock:
            if self._scratch is not None:
                self._scratch.forget(user_id)

    @property
    def champion_version(self) -> str | None:
        """The champion's version as last loaded, else the one the population was scored
        with (None: neither yet)."""
        champion = self._champion
        return self.book.table_version if champion is None else champion.version

    def store_returned(self, lend: Lend, store: Store) -> None:
        """A command borrowed the store and may have changed it: a new champion (``train``,
        ``models``) voids every answer; customers with newly ingested events or user rows are
        scored afresh on their next request; erased ones are forgotten; the scratch copy of
        the reference tables is rebuilt; everyone is rescored in the background."""
        if not lend.changed:
            return
        # ``store``: the service's reopened handle, before any request can use it.
        version = alias_version(store, CHAMPION)
        touched = customers_touched_since(store, lend.since)
        known = known_customers(store)
        with self._scratch_lock:
            if self._scratch is not None:
                self._scratch.close()
                self._scratch = None
        if version != self.champion_version:
            self.champion_replaced()
            return
        if len(touched) <= MARK_AT_MOST:
            self.book.mark(sorted(touched))
        # More: a weekly file touches most active customers; scoring them all on the spot
        # would queue every request behind them, so the refresh rescores everyone instead and
        # until it is in their answers are those of before the command.
        for gone in self.book.known_but_not_in(known):
            self.book.forget(gone)
        self._refresh.set()

    # -- everyone, in the background -------------------------------------------------------
    def rebuild(self) -> bool:
        """Score the whole population now and explain it; False when there is no champion or
        it changed meanwhile. After :meth:`champion_replaced`, the new champion's answers are
        computed whole and swapped in at once."""
        if self._swap.is_set():
            self._swap.clear()
            return self._swap_in()
        job = self._score_everyone()
        return job is not None and self._explain(job)

    def _swap_in(self) -> bool:
        """Score and explain everyone with the store's champion, then swap the answers in."""
        ticket = self.book.ticket()
        try:
            with self.pool.reading(wait_s=None) as store:
                version = alias_version(store, CHAMPION)
                if version is None:
                    self.champion_changed()
                    return False
                found = get_model_version(store, version)
                model = load_model(store, version)
                as_of = self.clock(store)
                snapshot, left_out = isolated_snapshot(
                    store, cutoffs=[as_of], features=list(found.features),
                    definition=trained_definition(found) or self.config.churn)
                context = reason_context(store, snapshot.index.to_frame(index=False)) \
                    if len(snapshot) else None
                known = set(known_customers(store))
            risks = probabilities(model, version, snapshot, tiers=self.config.scoring,
                                  as_of=as_of)
            said: dict[str, dict[str, tuple[str, ...]]] = {}
            for start in range(0, len(snapshot), EXPLAIN_CHUNK):
                if self._stop.is_set():
                    return False
                mask = np.zeros(len(snapshot), dtype=bool)
                mask[start:start + EXPLAIN_CHUNK] = True
                said |= explain_rows(model, snapshot.subset(mask), context)
        except Exception as exc:
            self.population_error = type(exc).__name__
            raise
        self.population_error = None
        scored = {r.user_id: replace(r, reasons=said.get(r.user_id, {})) for r in risks}
        with self._champion_lock:
            self._champion = None  # the next on-the-spot answer loads the new champion
            swapped = self.book.swap(scored, known, as_of=as_of, version=version, ticket=ticket,
                                     left_out=set(left_out))
        if swapped:
            self.population_left_out = len(left_out)
            log.info("swapped in %s: %d customers scored and explained as of %s", version,
                     len(scored), as_of)
        return swapped

    def _score_everyone(self) -> _ExplainJob | None:
        """Install everyone's probability now (seconds); returns the reasons still to compute.

        A failure is recorded in :attr:`population_error` (the readiness probe reports it) and
        raised; the next success clears it."""
        try:
            job = self._score_population()
        except Exception as exc:
            # The class only: a message may quote data (an id, an amount) and /readyz is public.
            self.population_error = type(exc).__name__
            raise
        self.population_error = None
        return job

    def _score_population(self) -> _ExplainJob | None:
        ticket = self.book.ticket()
        # The background scorer waits for a lent store however long the command takes.
        with self.pool.reading(wait_s=None) as store:
            version = alias_version(store, CHAMPION)
            if version is None:
                return None
            model = load_model(store, version)  # its own copy: scored beside request threads
            found = get_model_version(store, version)
            features = list(found.features)
            as_of = self.clock(store)
            snapshot, left_out = isolated_snapshot(
                store, cutoffs=[as_of], features=features,
                definition=trained_definition(found) or self.config.churn)
            context = reason_context(store, snapshot.index.to_frame(index=False)) \
                if len(snapshot) else None
            known = set(known_customers(store))
        if left_out and len(snapshot) == 0:
            # Nobody could be scored: the population was not scored (/readyz says not ready).
            raise RuntimeError(f"all {len(left_out)} customers of the population were left out: "
                               f"{_reasons(left_out)}")
        risks = probabilities(model, version, snapshot, tiers=self.config.scoring, as_of=as_of)
        before = self.book.previous_reasons(version)
        scored = {r.user_id: replace(r, reasons=before.get(r.user_id, {})) for r in risks}
        if not self.book.install(scored, known, as_of=as_of, version=version, ticket=ticket,
                                 left_out=set(left_out)):
            return None
        self.population_left_out = len(left_out)
        if left_out:
            # A count and the reason, never the ids: the log is not where customers are named
            # (``churnguard score`` names them to the operator who runs it).
            log.warning("left out %d customers whose data cannot be featurised: %s",
                        len(left_out), _reasons(left_out))
        log.info("scored %d customers as of %s with %s", len(scored), as_of, version)
        p = np.array([r.p_churn for r in risks], dtype=float)
        return _ExplainJob(ticket=ticket, model=model, snapshot=snapshot, context=context,
                           order=np.argsort(-p, kind="stable"))

    def _explain(self, job: _ExplainJob) -> bool:
        """Fill in the reasons, riskiest customers first. It reads no store (an erasure need
        not wait for it) and stops when the table is replaced or the service stops."""
        for start in range(0, len(job.order), EXPLAIN_CHUNK):
            if self._stop.is_set():
                return False
            mask = np.zeros(len(job.order), dtype=bool)
            mask[job.order[start:start + EXPLAIN_CHUNK]] = True
            said = explain_rows(job.model, job.snapshot.subset(mask), job.context)
            if not self.book.fill(said, job.ticket):
                return False
        log.info("explained %d customers", len(job.order))
        return True

    def start(self, *, refresh_seconds: float, warm: bool) -> None:
        """Score everyone's probability before returning (when ``warm``); the reasons and
        later refreshes run in a background thread."""
        job = None
        if warm:
            try:
                job = self._score_everyone()
                with self.pool.reading() as store, self._scratch_lock:
                    if self._scratch is None:  # the first fresh answer need not build it
                        self._scratch = CustomerScratch(store)
            except Exception:  # noqa: BLE001 - the service still answers, customer by customer
                log.exception("could not score the population at start")
        self._thread = threading.Thread(target=self._loop, args=(refresh_seconds, job),
                                        name="churnguard-risk-refresh", daemon=True)
        self._thread.start()

    def wait_explained(self, timeout: float) -> bool:
        """Wait until the population scored at the start is explained (tests, benchmarks);
        False on timeout."""
        return self._explained.wait(timeout)

    def _loop(self, refresh_seconds: float, job: _ExplainJob | None) -> None:
        # OpenMP's thread count is per calling thread: the requests' own model calls keep
        # every core.
        with threadpool_limits(limits=background_threads(), user_api="openmp"):
            self._background(refresh_seconds, job)

    def _background(self, refresh_seconds: float, job: _ExplainJob | None) -> None:
        try:
            if job is not None:
                self._explain(job)
        except Exception:  # noqa: BLE001 - answers are computed on the spot meanwhile
            log.exception("explaining the population failed")
        finally:
            self._explained.set()
        while not self._stop.is_set():
            timeout = refresh_seconds if refresh_seconds > 0 else None
            self._refresh.wait(timeout)
            if self._stop.is_set():
                return
            self._refresh.clear()
            try:
                self.rebuild()
            except Exception:  # noqa: BLE001 - keep refreshing; the log says what failed
                if self._stop.is_set():
                    return  # the service stopped while a command borrowed the store
                log.exception("refreshing the population's scores failed")

    def stop_soon(self) -> None:
        """Ask the background scorer to stop (without waiting for it)."""
        self._stop.set()
        self._refresh.set()

    def stop(self) -> None:
        self.stop_soon()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with self._scratch_lock:
            if self._scratch is not None:
                self._scratch.close()
                self._scratch = None
