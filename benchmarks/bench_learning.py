"""Campaigns that learn: twelve monthly plans on the responding shop, scored by its truth.

    python benchmarks/bench_learning.py [--customers 20000] [--seeds 0,1,2] [--cycles 12]
                                        [--scenario default|drift] [--days 720]
                                        [--budget-per-customer 0.25] [--explore-share X]
                                        [--no-write]

Per seed, in a fresh process: simulate ``--days`` days of the shop with its state kept
(``simulate(keep_state=True)``), ingest it and train the champion (gbdt). Then, every 30 days
from the end of the window, for each strategy on its OWN copy of the shop (every copy starts from
the same state, so every strategy faces the same customers; they differ only by what their own
contacts changed): score, plan, deliver into the responding shop
(``churnguard.simulate.continue_shop``), carry the shop on a month, ingest the month, measure,
learn, repeat. ``--strategies`` runs some of them (cycle 1 of the learning strategy always
runs: the others take their budget and cycle-1 inputs from it). The strategies, all under the
same budget (``--budget-per-customer`` x the
population of the first cycle, every cycle):

* ``churnguard learning``: the plan as ``churnguard plan`` makes it (its control group and, where
  the plan has it, its exploration share), the champion retrained every cycle, the uplift learned
  again from every campaign whose 90-day window has ended (the campaigns pooled:
  ``[uplift] half_life_days``); a campaign planned at T is learned from at T + 90 days;
* ``churnguard frozen``: the same as learning in cycle 1; then its scoring model and its uplift
  model stay those of cycle 1 (no control group and no exploration after cycle 1: it learns
  nothing from them);
* ``usual practice``: the 10% coupon to the riskiest customers (its champion retrained every
  cycle, as a shop running a churn model would);
* ``random targeting``: random eligible customers, each a random eligible action, until the
  budget ends;
* ``ceiling: true average effects``: every customer gets the true mean effect of each action at
  the cycle's cutoff (a perfect A/B readout), allocated like churnguard's plan;
* ``ceiling: loop told its contacts' true effects``: a learning loop with perfect measurement,
  to say whether 0.5 of the oracle can be reached from what a loop at this budget can observe.
  Cycle 1 contacts random eligible customers with random eligible actions until the budget
  ends (a fully randomised campaign). From then on every customer it contacted in any earlier
  cycle comes back at once with the exact change the contact made (the shop's truth) instead
  of a noisy 0/1 outcome 90 days later; a gradient-boosted regressor per action (the features
  churnguard's plan sees -> the true effect) predicts every customer's effects, and churnguard's
  allocation spends the budget on them, except the exploration share (``[intervene]
  explore_share`` of the budget), spent at random as in cycle 1. No control group: it needs
  none. Its only limits are the number of contacts, which customers the features tell apart,
  and the shop's drift from month to month;
* ``ceiling: loop told its contacts' 0/1 outcomes and true baselines``: the same loop (the same
  randomised first campaign, the same exploration), told at once for every earlier contact
  what a real loop learns only 90 days later and only roughly: whether the customer kept
  buying (a 0/1 draw from the shop's true chance with the action) and, exactly, the chance
  they had without it (so it needs no control group). Outcome minus baseline is an unbiased,
  noisy reading of the contact's effect; per action it learns from those readings with the
  better by 5-fold out-of-fold squared error of their mean and a strongly regularised
  gradient-boosted regressor. A real loop knows less (it must estimate the baseline, waits 90
  days, holds out controls), so what this loop keeps bounds what one with these learners can;
* ``ceiling: loop told its contacts' 0/1 outcomes and true baselines 90 days late``: that loop,
  told each contact's outcome only when a real loop could read it, 90 days (three cycles) after
  the contact;
* ``loop reading 0/1 outcomes 90 days late against the champion's baseline``: no longer a
  ceiling but the design it suggests: the same loop, its baseline now the churn champion's
  own estimate (1 - p_churn at the contact's cutoff) instead of the truth, so it uses nothing a
  shop does not have (the 0/1 outcome is drawn from the shop's true chance, as the shop itself
  would draw it);
* ``oracle``: the allocation on the true effects of each action per customer.

Every allocation uses its own store's values, expected costs, eligibility (cooldown, coupon
limits) and capacities. The baselines' expected coupon costs come from churnguard's cycle-1
uplift model (as in bench_plan.py, where every allocation shares churnguard's inputs), and their
scoring model stays that of cycle 1 except the usual practice's.

The truth of each cycle (``truth_accounting.account``, shared with bench_plan.py): for the
contacted customers, true saves (the simulator's exact change in P(order in 90 days)), true
retained value (true change x the customer's value) and TRUE NET MARGIN (retained value x gross
margin - expected spend), from the shop's truth at the cycle's cutoff; a check confirms that the
shop's own record of each contact (``truth/contacts.parquet``) gives the same effects. Also per
cycle for the churnguard strategies: the learner chosen, the campaign rows learned from, the
correlation of the estimated effects with the true ones and their mean bias, and (learning) the
measured effect of the campaign whose 90-day window just ended against its true mean effect.

Checkpoints: each strategy's cycle is kept in benchmarks/.data/learning_*/<strategy>/cycle_NN
(its store, the shop's state, record.json written last); a rerun resumes after the last complete
cycle. The uplift learned from a given set of campaigns is kept (learned.pkl) and reused while
that set does not change (a campaign joins it 90 days after its plan), so cycles 2 and 3 reuse
cycle 1's model exactly as learning again would give it. Cycle 1 is computed once for learning
and frozen (they are the same plan) and its inputs once for every strategy.
"""

from __future__ import annotations

import argparse
import datetime as dt
from dataclasses import replace
import json
import math
import pickle
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from results import DATA, START, ingest_shop, mean_std, peak_rss_mib, run_seeds  # noqa: E402
from results import write_section  # noqa: E402
from truth_accounting import account, true_uplift, usual_practice  # noqa: E402

LEARNING = "churnguard learning"
FROZEN = "churnguard frozen"
USUAL = "usual practice"
RANDOM = "random targeting"
AVERAGE = "ceiling: true average effects"
EXACT = "ceiling: loop told its contacts' true effects"
NOISY = "ceiling: loop told its contacts' 0/1 outcomes and true baselines"
NOISY_LATE = "ceiling: loop told its contacts' 0/1 outcomes and true baselines 90 days late"
MODEL = "loop reading 0/1 outcomes 90 days late against the champion's baseline"
ORACLE = "oracle"
STRATEGIES = (LEARNING, FROZEN, USUAL, RANDOM, AVERAGE, EXACT, NOISY, NOISY_LATE, MODEL, ORACLE)
# ``--strategies`` names them by these words.
SHORT = {"learning": LEARNING, "frozen": FROZEN, "usual": USUAL, "random": RANDOM,
         "average": AVERAGE, "exact": EXACT, "noisy": NOISY, "noisy_late": NOISY_LATE,
         "model": MODEL, "oracle": ORACLE}
# The loops that learn from their own contacts (``Seed.exact_choice``): what each is told of a
# contact (its exact effect, or its 0/1 outcome less the true or the champion's chance of buying
# without a contact) and how many cycles after the contact.
LOOPS = {EXACT: ("__effect", None, 1), NOISY: ("__outcome", "__baseline", 1),
         NOISY_LATE: ("__outcome", "__baseline", 3), MODEL: ("__outcome", "__model_baseline", 3)}
MONTH = 30
DEFAULTS = {"customers": 20_000, "seeds": "0,1,2", "cycles": 12, "scenario": "default",
            "days": 720, "budget_per_customer": 0.25, "explore_share": None,
            "control_share": None, "shrinkage": None, "strategies": ",".join(SHORT)}
# The exact-effects ceiling fits an action's effects once this many of its contacts are known
# (else it uses their mean, and 0 for an action it never gave).
EXACT_MIN_ROWS = 30


def slug(strategy: str) -> str:
    """A strategy's folder name.

    >>> slug("ceiling: true average effects")
    'ceiling_true_average_effects'
    """
    return "".join(c if c.isalnum() else "_" for c in strategy).replace("__", "_")


def later_half(cycles: int) -> list[int]:
    """The cycles the Done-when line judges: 7-12 of 12, the later half of any other count.

    >>> later_half(12), later_half(5)
    ([7, 8, 9, 10, 11, 12], [3, 4, 5])
    """
    return list(range(cycles // 2 + 1, cycles + 1))


def explore_key(config_cls) -> tuple[str, str] | None:  # noqa: ANN001
    """(section, key) of the plan's exploration share (``[intervene] explore_share``), else None
    for a churnguard without exploration (the bench also runs on older checkouts)."""
    for section in ("intervene", "uplift"):
        fields = config_cls.model_fields[section].annotation.model_fields
        if "explore_share" in fields:
            return section, "explore_share"
    return None


def with_settings(config, section: str, **values):  # noqa: ANN001, ANN201
    """``config`` with ``values`` set in its ``section``, validated.

    >>> from churnguard.config import ProjectConfig
    >>> with_settings(ProjectConfig(), "intervene", control_share=0.0).intervene.control_share
    0.0
    """
    data = config.model_dump(mode="json")
    data[section] = {**data[section], **values}
    return type(config).model_validate(data)


def random_targeting(inputs, budget: float, rng) -> "np.ndarray":  # noqa: ANN001, F821
    """Random eligible customers, each a uniformly random eligible action, while the budget
    lasts (the first that does not fit ends it, as in the usual practice)."""
    import numpy as np

    eligible = inputs.eligible[inputs.actions].to_numpy(dtype=bool)
    cost = inputs.cost[inputs.actions].to_numpy()
    choice = np.full(len(cost), -1)
    left = budget
    for i in rng.permutation(np.flatnonzero(eligible.any(axis=1))):
        k = rng.choice(np.flatnonzero(eligible[i]))
        if cost[i, k] > left:
            break
        choice[i] = k
        left -= cost[i, k]
    return choice


def noisy_effects(x, y, features, *, seed: int,  # noqa: ANN001
                  folds: int = 5) -> "np.ndarray":  # noqa: F821
    """Effects for ``features`` learned from noisy unbiased readings ``y`` at ``x`` (the
    0/1-outcome ceiling): their mean, or a strongly regularised gradient-boosted regressor
    where its ``folds``-fold out-of-fold squared error is lower (with too few rows for folds,
    the mean). As ``y`` is the effect plus noise independent of the fit, the lower
    out-of-fold error is the lower error against the true effects.

    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> x = pd.DataFrame({"x": rng.random(6000)})
    >>> y = np.where(x["x"] > 0.5, 0.3, 0.0) + rng.normal(0, 0.4, 6000)
    >>> pred = noisy_effects(x, y, pd.DataFrame({"x": [0.2, 0.8]}), seed=0)
    >>> bool(pred[1] - pred[0] > 0.2)
    True
    >>> noisy_effects(x[:20], y[:20], x[:2], seed=0).tolist() == [y[:20].mean()] * 2
    True
    """
    import lightgbm as lgb
    import numpy as np

    y = np.asarray(y, dtype=float)
    if len(y) < 20 * folds:
        return np.full(len(features), y.mean())

    def model():  # noqa: ANN202
        return lgb.LGBMRegressor(n_estimators=200, learning_rate=0.02, num_leaves=7,
                                 min_child_samples=max(50, len(y) // 50), subsample=0.8,
                                 subsample_freq=1, colsample_bytree=0.8, reg_lambda=10.0,
                                 random_state=seed, n_jobs=1, verbose=-1)

    fold = np.random.default_rng(seed).permutation(len(y)) % folds
    err_mean = err_tree = 0.0
    for k in range(folds):
        fit, out = fold != k, fold == k
        err_mean += float(((y[out] - y[fit].mean()) ** 2).sum())
        tree = model().fit(x[fit], y[fit])
        err_tree += float(((y[out] - tree.predict(x[out])) ** 2).sum())
    if err_tree >= err_mean:
        return np.full(len(features), y.mean())
    return model().fit(x, y).predict(features)


class Seed:
    """One seed's shop, strategies and checkpoints."""

    def __init__(self, args: argparse.Namespace, seed: int) -> None:
        from churnguard.config import ProjectConfig

        self.args, self.seed = args, seed
        # Runs with other settings of churnguard's plan keep their own checkpoints.
        tag = "".join(f"_{name}{getattr(args, name)}" for name in
                      ("explore_share", "control_share", "shrinkage")
                      if getattr(args, name, None) is not None)
        self.folder = DATA / f"learning_{args.scenario}_{args.customers}_{args.days}_{seed}{tag}"
        self.t1 = START + dt.timedelta(days=args.days)
        self.config = ProjectConfig()
        key = explore_key(ProjectConfig)
        self.explore = "not in this churnguard's plan yet"
        for option, section, name in (("control_share", "intervene", "control_share"),
                                      ("shrinkage", "uplift", "shrinkage")):
            if getattr(args, option) is not None:
                self.config = with_settings(self.config, section, **{name: getattr(args, option)})
        if args.explore_share is not None:
            if key is None:
                raise SystemExit("--explore-share: this churnguard's plan has no exploration "
                                 "share yet (config key explore_share); leave the option out")
            self.config = with_settings(self.config, key[0], **{key[1]: args.explore_share})
        if key is not None:
            self.explore = f"[{key[0]}] {key[1]} = {getattr(getattr(self.config, key[0]), key[1])}"
        shrinkage = getattr(self.config.uplift, "shrinkage", "none (not in this churnguard)")
        self.explore += (f"; [intervene] control_share = {self.config.intervene.control_share}"
                         f"; [uplift] shrinkage = {shrinkage}")
        self.started = time.perf_counter()
        self.inputs_1 = None  # cycle 1's plan inputs, the same for every strategy

    def say(self, message: str) -> None:
        print(f"[seed {self.seed} {time.perf_counter() - self.started:7.0f}s] {message}",
              file=sys.stderr, flush=True)

    def date(self, cycle: int) -> dt.date:
        return self.t1 + dt.timedelta(days=MONTH * (cycle - 1))

    def cycle_dir(self, strategy: str, cycle: int) -> Path:
        return self.folder / slug(strategy) / f"cycle_{cycle:02d}"

    # -- the shared start ------------------------------------------------------------------------
    def base(self) -> tuple[Path, Path]:
        """The simulated shop (state kept, truth at the first cutoff) and its store with the
        champion, each built once."""
        from churnguard.simulate import simulate
        from churnguard.store import Store
        from churnguard.training import train_model

        sim = self.folder / "sim"
        if not (sim / "manifest.json").exists():
            self.say(f"simulating {self.args.customers:,} customers, {self.args.days} days "
                     f"({self.args.scenario})")
            simulate(n_users=self.args.customers, days=self.args.days, seed=self.seed,
                     out_dir=sim, start=START, cutoffs=[self.t1], scenario=self.args.scenario,
                     keep_state=True)
        db = self.folder / "base.duckdb"
        if not db.exists():
            tmp = self.folder / "base.tmp.duckdb"
            tmp.unlink(missing_ok=True)
            self.say("ingesting and training the champion")
            with Store.open(tmp) as store:
                ingest_shop(store, sim)
                train_model(store, definition=self.config.churn, model="gbdt", promote=True)
            tmp.rename(db)
        return sim, db

    def start_of(self, strategy: str, cycle: int) -> tuple[Path, Path]:
        """The store and the shop a strategy's cycle starts from."""
        if cycle == 1:
            sim, db = self.base()
            return db, sim
        before = self.cycle_dir(strategy, cycle - 1)
        return before / "store.duckdb", before / "shop"

    def done(self, strategy: str, cycle: int) -> dict | None:
        record = self.cycle_dir(strategy, cycle) / "record.json"
        return json.loads(record.read_text()) if record.exists() else None

    # -- one cycle of one strategy ---------------------------------------------------------------
    def run(self) -> dict[str, object]:
        chosen = [SHORT[s] for s in self.args.strategies.split(",")]
        records: dict[str, list[dict]] = {s: [] for s in STRATEGIES if s in chosen}
        for cycle in range(1, self.args.cycles + 1):
            for strategy in STRATEGIES:
                if strategy not in chosen and not (cycle == 1 and strategy == LEARNING):
                    continue
                record = self.done(strategy, cycle)
                if record is not None and self.start_lost(strategy, cycle, chosen):
                    self.say("cycle 1 of churnguard learning again: its store, where learning "
                             "and frozen go on from, was removed by an earlier run")
                    record = None
                if record is None:
                    if strategy == FROZEN and cycle == 1:
                        record = self.clone_learning_cycle_1()
                    else:
                        record = self.cycle(strategy, cycle)
                    self.say(f"cycle {cycle} {strategy}: true net margin "
                             f"{record['truth']['true_net_margin']:,.1f}, contacted "
                             f"{record['truth']['contacted']:,}")
                if strategy in records:
                    records[strategy].append(record)
            self.tidy(cycle)
        return {"seed": self.seed, "records": records, "explore": self.explore,
                "peak_rss_mib": peak_rss_mib()}

    def clone_learning_cycle_1(self) -> dict:
        """Frozen's cycle 1 is learning's: the same plan, delivered to the same shop."""
        src, dst = self.cycle_dir(LEARNING, 1), self.cycle_dir(FROZEN, 1)
        shutil.rmtree(dst, ignore_errors=True)
        dst.mkdir(parents=True)
        shutil.copy2(src / "store.duckdb", dst / "store.duckdb")
        shutil.copytree(src / "shop", dst / "shop")
        shutil.copy2(src / "record.json", dst / "record.json")
        return json.loads((dst / "record.json").read_text())

    def start_lost(self, strategy: str, cycle: int, chosen: list[str]) -> bool:
        """Whether this is learning's cycle 1, done, but without the store and shop that a
        chosen learning or frozen strategy still has to go on from (runs before the fix in
        ``tidy`` removed them; recomputing the cycle gives the same record)."""
        if (strategy, cycle) != (LEARNING, 1):
            return False
        here = self.cycle_dir(LEARNING, 1)
        if (here / "store.duckdb").exists() and (here / "shop").exists():
            return False
        return ((FROZEN in chosen and self.done(FROZEN, 1) is None)
                or (LEARNING in chosen and self.args.cycles > 1
                    and self.done(LEARNING, 2) is None))

    def tidy(self, cycle: int) -> None:
        """Drop the stores and shops a finished cycle no longer needs (its records stay): a
        strategy's cycle before ``cycle`` once ``cycle`` is done, except learning's cycle 1,
        which frozen starts from (and a run of other strategies may not have run frozen)."""
        if cycle < 2:
            return
        for strategy in STRATEGIES:
            if (strategy, cycle - 1) == (LEARNING, 1) or self.done(strategy, cycle) is None:
                continue
            old = self.cycle_dir(strategy, cycle - 1)
            (old / "store.duckdb").unlink(missing_ok=True)
            shutil.rmtree(old / "shop", ignore_errors=True)

    def learned(self, store, strategy: str, cycle: int, when: dt.datetime):  # noqa: ANN001
        """The uplift a strategy plans with: None (learn) or a kept LearnedUplift."""
        from churnguard.campaigns import measurable_campaigns_sql, observed_until

        if strategy != LEARNING:
            # Frozen and the baselines: cycle 1's model (cycle 1 of learning is computed first).
            kept = self.load_learned(self.cycle_dir(LEARNING, 1))[1]
            if kept is None:
                raise RuntimeError("cycle 1 had no campaign history to learn uplift from, so "
                                   "there is no model to keep fixed; simulate a longer window")
            return kept
        window = self.config.intervene.window_days
        ids = sorted(r[0] for r in store.con.execute(
            f"SELECT campaign_id FROM ({measurable_campaigns_sql(window)})",
            [observed_until(store, when)]).fetchall())
        # The newest kept model (this cycle's own when an interrupted run learned it already).
        for back in range(cycle, 0, -1):
            kept_ids, kept = self.load_learned(self.cycle_dir(LEARNING, back))
            if kept_ids is not None:
                return kept if kept_ids == ids and kept is not None else None
        return None

    @staticmethod
    def load_learned(folder: Path):  # noqa: ANN205
        path = folder / "learned.pkl"
        if not path.exists():
            return None, None
        with path.open("rb") as f:
            return pickle.load(f)

    def cycle(self, strategy: str, cycle: int) -> dict:
        import numpy as np
        import pandas as pd

        from churnguard.config import IngestConfig
        from churnguard.ingest import ingest_files
        from churnguard.intervene.plan import make_plan, plan_inputs, save_plan
        from churnguard.simulate import continue_shop
        from churnguard.store import Store
        from churnguard.training import train_model

        timings: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[name] = timings.get(name, 0.0) + now - clock
            clock = now

        store_from, shop_from = self.start_of(strategy, cycle)
        here = self.cycle_dir(strategy, cycle)
        here.mkdir(parents=True, exist_ok=True)
        for left in here.iterdir():  # an interrupted run's leftovers, but not what it learned
            if left.name != "learned.pkl":
                shutil.rmtree(left) if left.is_dir() else left.unlink()
        db = here / "work.duckdb"
        shutil.copy2(store_from, db)
        when_date = self.date(cycle)
        when = dt.datetime.combine(when_date, dt.time())
        config = self.config
        if strategy == FROZEN:  # nothing to learn from: no control group, no exploration
            config = with_settings(config, "intervene", control_share=0.0)
            key = explore_key(type(config))
            if key is not None:
                config = with_settings(config, key[0], **{key[1]: 0.0})
        extra: dict[str, object] = {}
        say = lambda m: self.say(f"cycle {cycle} {strategy}: {m}")  # noqa: E731
        with Store.open(db) as store:
            if cycle > 1 and strategy in (LEARNING, USUAL, *LOOPS):
                say("retraining the champion")
                # On the newest labelled cutoffs of the data so far (it ends at this cutoff).
                train_model(store, definition=config.churn, model="gbdt", promote=True)
                lap("train")
            if cycle == 1 and self.inputs_1 is not None:
                inputs = self.inputs_1
            else:
                learned = self.learned(store, strategy, cycle, when)
                say("plan inputs" + (" (kept uplift model)" if learned is not None else
                                     " (learning the uplift)"))
                inputs = plan_inputs(store, config=config, as_of=when, seed=self.seed,
                                     progress=say, learned=learned)
                lap("plan_inputs")
                if strategy == LEARNING:
                    self.keep_learned(store, here, inputs, when)
                if cycle == 1:
                    self.inputs_1 = inputs
            budget = self.budget()
            truth = self.truth(shop_from, when_date)
            ids = inputs.customers["user_id"].astype(str)
            true = true_uplift(truth, ids, inputs.actions)
            if strategy in (LEARNING, FROZEN):
                plan = make_plan(store, config=config, budget=budget, as_of=when,
                                 inputs=inputs, seed=self.seed,
                                 campaign_id=f"{slug(strategy)}-{cycle:02d}", progress=say)
                save_plan(store, plan, config=config)
                rows = plan.rows
                treated = rows[~rows["is_control"]]
                position = pd.Series(np.arange(len(ids)), index=ids)
                choice = np.full(len(ids), -1)
                choice[position[treated["user_id"]].to_numpy()] = [
                    inputs.actions.index(a) for a in treated["action"]]
                delivered = rows[["user_id", "action", "is_control"]].assign(
                    campaign_id=plan.campaign_id, assigned_at=pd.Timestamp(when, tz="UTC"))
                extra["estimates"] = self.estimates(inputs, true)
                extra["plan"] = {"treated": int(len(treated)),
                                 "control": int(rows["is_control"].sum()),
                                 "uplift_source": inputs.uplift_source}
            else:
                if strategy in LOOPS:
                    choice, pred = self.exact_choice(inputs, budget, config, cycle, strategy)
                    if cycle > 1:
                        extra["estimates"] = self.estimates(replace(inputs, uplift=pred), true)
                else:
                    choice = self.baseline_choice(strategy, inputs, budget, true, config, cycle)
                picked = np.flatnonzero(choice >= 0)
                delivered = pd.DataFrame({
                    "campaign_id": f"{slug(strategy)}-{cycle:02d}",
                    "user_id": ids.to_numpy()[picked],
                    "action": np.asarray(inputs.actions, dtype=object)[choice[picked]],
                    "is_control": False, "assigned_at": pd.Timestamp(when, tz="UTC"),
                    "cost": inputs.cost[inputs.actions].to_numpy()[picked, choice[picked]]})
                # Recorded as the shop's campaign, so cooldowns and coupon limits apply to it.
                path = here / "campaign.parquet"
                delivered.to_parquet(path)
                ingest_files(store, kind="campaigns", files=[path],
                             config=IngestConfig(future_events="allow"))
            lap("plan")
            if strategy in LOOPS:
                self.keep_exact_rows(here, inputs, choice, true,
                                     baseline=1.0 - truth["p_churn"].reindex(ids).fillna(1.0),
                                     rng=np.random.default_rng([self.seed, cycle, 0x01]))
            result = account(choice, true=true.to_numpy(),
                             value=inputs.customers["value"].to_numpy(dtype=float),
                             cost=inputs.cost[inputs.actions].to_numpy(),
                             estimated=inputs.uplift[inputs.actions].to_numpy(),
                             gross_margin=config.intervene.gross_margin, actions=inputs.actions)
            say(f"delivering {result['contacted']:,} contacts; the shop goes on a month")
            month = continue_shop(shop_from, delivered, until=self.date(cycle + 1),
                                  out_dir=here / "shop",
                                  horizon_days=config.intervene.window_days)
            lap("continue")
            extra["contacts_check"] = self.contacts_check(month.paths["truth_contacts"],
                                                          true, ids, inputs.actions)
            ingest = IngestConfig(future_events="allow")
            for kind in ("users", "events"):  # the month's newcomers, then everyone's events
                ingest_files(store, kind=kind, files=[month.paths[kind]], config=ingest)
            lap("ingest")
            if strategy == LEARNING:
                extra["measured"] = self.measure(store, cycle)
                lap("measure")
        db.rename(here / "store.duckdb")
        record = {"cycle": cycle, "date": when_date.isoformat(), "budget": budget,
                  "population": int(len(ids)), "truth": result, "seconds": timings, **extra}
        (here / "record.json").write_text(json.dumps(record, default=str, indent=1))
        return record

    def budget(self) -> float:
        """The same budget for every strategy and cycle: the per-customer budget x cycle 1's
        population (kept in its record, so a resumed run uses the same)."""
        first = self.done(LEARNING, 1)
        if first is not None:
            return float(first["budget"])
        if self.inputs_1 is None:
            raise RuntimeError("cycle 1 of the learning strategy runs first")
        return self.args.budget_per_customer * len(self.inputs_1.customers)

    def keep_learned(self, store, here: Path, inputs, when: dt.datetime) -> None:  # noqa: ANN001
        """Keep the uplift this cycle planned with, under the campaigns it was learned from."""
        from churnguard.campaigns import measurable_campaigns_sql, observed_until

        window = self.config.intervene.window_days
        ids = sorted(r[0] for r in store.con.execute(
            f"SELECT campaign_id FROM ({measurable_campaigns_sql(window)})",
            [observed_until(store, when)]).fetchall())
        with (here / "learned.pkl").open("wb") as f:
            pickle.dump((ids, inputs.learned), f)

    def truth(self, shop: Path, when: dt.date) -> "pd.DataFrame":  # noqa: F821
        """The shop's exact truth at ``when`` (its P(churn) and every action's effect)."""
        import pandas as pd

        truth = pd.read_parquet(shop / "truth" / "churn.parquet")
        if "cutoff" in truth:
            truth = truth[pd.to_datetime(truth["cutoff"]).dt.date == when]
        if truth.empty:
            raise RuntimeError(f"the shop in {shop} has no truth at {when}")
        return truth.set_index(truth["user_id"].astype(str))

    @staticmethod
    def keep_exact_rows(here: Path, inputs, choice, true, *, baseline=None,  # noqa: ANN001
                        rng=None) -> None:  # noqa: ANN001
        """The contacted customers' features, action and TRUE effect (for the exact ceiling);
        with ``baseline`` (each customer's true chance of buying without a contact) also that
        chance and a 0/1 outcome drawn from the chance with the contact (``rng``), for the
        0/1-outcome ceiling."""
        import numpy as np

        picked = np.flatnonzero(choice >= 0)
        rows = inputs.features.iloc[picked].reset_index(drop=True).copy()
        rows["__action"] = np.asarray(inputs.actions, dtype=object)[choice[picked]]
        rows["__effect"] = true.to_numpy()[picked, choice[picked]]
        rows["__model_baseline"] = 1.0 - inputs.customers["p_churn"].to_numpy(dtype=float)[picked]
        if baseline is not None:
            rows["__baseline"] = np.asarray(baseline, dtype=float)[picked]
            chance = np.clip(rows["__baseline"] + rows["__effect"], 0.0, 1.0)
            rows["__outcome"] = (rng.random(len(rows)) < chance).astype(float)
        rows.to_parquet(here / "exact_rows.parquet")

    def exact_choice(self, inputs, budget: float, config, cycle: int,  # noqa: ANN001, ANN201
                     strategy: str = EXACT):
        """The plan of one of the ``LOOPS`` (the module docstring): in cycle 1 random contacts
        until the budget ends; then per action a regressor, on their features, of what the loop
        is told of every customer it contacted early enough (the true effect, or the 0/1
        outcome less a baseline), churnguard's allocation on the predictions, and
        ``explore_share`` of the budget spent at random first."""
        import lightgbm as lgb
        import numpy as np
        import pandas as pd

        from churnguard.intervene.plan import choose_actions

        rng = np.random.default_rng([self.seed, cycle, 0xE7])
        if cycle == 1:
            return random_targeting(inputs, budget, rng), inputs.uplift * np.nan
        told, baseline, late = LOOPS[strategy]
        kept = [pd.read_parquet(self.cycle_dir(strategy, c) / "exact_rows.parquet")
                for c in range(1, cycle)]
        # A cycle's contacts are told ``late`` cycles on. Before any is, every effect is 0
        # (none learned), so only the exploration is spent.
        rows = pd.concat(kept[:max(cycle - late, 0)] or [kept[0].iloc[:0]], ignore_index=True)
        target = (rows[told] - (rows[baseline] if baseline else 0.0)).to_numpy()
        features = inputs.features.reset_index(drop=True)
        columns = list(features.columns)
        for c in columns:  # LightGBM takes numbers and categories
            if features[c].dtype == object:
                features[c] = features[c].astype("category")
                rows[c] = pd.Categorical(rows[c], categories=features[c].cat.categories)
        pred = pd.DataFrame(0.0, index=features.index, columns=inputs.actions)
        for a in inputs.actions:
            mine = (rows["__action"] == a).to_numpy()
            if baseline is not None and mine.any():
                pred[a] = noisy_effects(rows.loc[mine, columns], target[mine],
                                        features[columns], seed=self.seed)
            elif mine.sum() >= EXACT_MIN_ROWS:
                model = lgb.LGBMRegressor(n_estimators=300, learning_rate=0.03, num_leaves=15,
                                          min_child_samples=10, subsample=0.8, subsample_freq=1,
                                          colsample_bytree=0.8, random_state=self.seed,
                                          n_jobs=1, verbose=-1)
                model.fit(rows.loc[mine, columns], target[mine])
                pred[a] = model.predict(features[columns])
            elif mine.any():
                pred[a] = float(target[mine].mean())
        share = config.intervene.explore_share
        config = with_settings(config, "intervene", control_share=0.0)
        explored = random_targeting(inputs, share * budget, rng)
        cost = inputs.cost[inputs.actions].to_numpy()
        picked = np.flatnonzero(explored >= 0)
        left = budget - float(cost[picked, explored[picked]].sum())
        rest = replace(inputs, uplift=pred, eligible=inputs.eligible.mul(explored < 0, axis=0))
        choice = choose_actions(rest, config=config, budget=left)
        choice[picked] = explored[picked]
        return choice, pred

    def baseline_choice(self, strategy: str, inputs, budget: float, true,  # noqa: ANN001
                        config, cycle: int):  # noqa: ANN001, ANN201
        import numpy as np
        import pandas as pd

        from churnguard.intervene.plan import choose_actions

        # The baselines hold out no one: they learn nothing from a control group.
        config = with_settings(config, "intervene", control_share=0.0)
        if strategy == USUAL:
            return usual_practice(inputs, budget)
        if strategy == RANDOM:
            return random_targeting(inputs, budget,
                                    np.random.default_rng([self.seed, cycle, 0x52]))
        if strategy == AVERAGE:
            mean = pd.DataFrame({a: np.full(len(true), true[a].mean()) for a in true.columns})
            return choose_actions(inputs, config=config, budget=budget, uplift=mean)
        if strategy == ORACLE:
            return choose_actions(inputs, config=config, budget=budget, uplift=true)
        raise ValueError(strategy)

    @staticmethod
    def estimates(inputs, true) -> dict:  # noqa: ANN001
        """How good the effect estimates the plan used are, per action: correlation with the
        true effects over the population, mean estimate and mean truth."""
        import numpy as np

        out = {}
        for a in inputs.actions:
            est, tru = inputs.uplift[a].to_numpy(dtype=float), true[a].to_numpy(dtype=float)
            out[a] = {"corr": float(np.corrcoef(est, tru)[0, 1]) if est.std() > 0 else None,
                      "mean_estimate": float(est.mean()), "mean_true": float(tru.mean())}
        if inputs.evaluation is not None:
            # Each action's average effect as the plan used it and as measured, with the
            # measurement's standard error (the intervals that should narrow cycle by cycle).
            out["_learner"] = {"chosen": inputs.evaluation.chosen,
                               "rows": inputs.evaluation.n_rows,
                               "campaigns": inputs.evaluation.n_campaigns,
                               "calibration": {
                                   a: {k: c[k] for k in ("ate", "ate_raw", "ate_se", "ate_sd")
                                       if k in c and np.isfinite(c[k])}
                                   for a, c in inputs.evaluation.calibration.items()}}
        return out

    @staticmethod
    def contacts_check(path: Path, true, ids, actions) -> dict:  # noqa: ANN001
        """The shop's own record of each treated contact against the truth the cycle was scored
        by: the largest difference of the effects (0 when they agree)."""
        import numpy as np
        import pandas as pd

        contacts = pd.read_parquet(path)
        contacts = contacts[~contacts["is_control"]]
        if contacts.empty:
            return {"contacts": 0, "max_abs_diff": 0.0}
        position = pd.Series(np.arange(len(ids)), index=ids.to_numpy())
        rows = position[contacts["user_id"].astype(str)].to_numpy()
        cols = [list(actions).index(a) for a in contacts["action"]]
        mine = true.to_numpy()[rows, cols]
        return {"contacts": int(len(contacts)),
                "max_abs_diff": float(np.abs(mine + contacts["effect"].to_numpy()).max()),
                "true_mean_uplift": float(-contacts["effect"].mean())}

    def measure(self, store, cycle: int) -> dict | None:  # noqa: ANN001
        """Measure the learning strategy's campaign whose window ended with this cycle's month,
        against the true mean effect of its contacts (kept in that cycle's record)."""
        from churnguard.intervene.measure import MeasurementError, measure_campaign

        # Its window ended at this cycle's cutoff; the month's events now cover all of it.
        back = cycle - self.config.intervene.window_days // MONTH
        if back < 1:
            return None
        campaign = f"{slug(LEARNING)}-{back:02d}"
        try:
            m = measure_campaign(store, campaign_id=campaign,
                                 window_days=self.config.intervene.window_days,
                                 as_of=self.date(cycle + 1))
        except MeasurementError as exc:  # recorded and reported, not hidden
            self.say(f"cannot measure {campaign}: {exc}")
            return {"campaign": campaign, "error": str(exc)}
        record = self.done(LEARNING, back)
        g = m.overall
        return {"campaign": campaign, "n_treated": m.n_treated, "n_control": m.n_control,
                "incremental_retention": g.incremental_retention,
                "ci": list(g.incremental_retention_ci) if g.incremental_retention_ci else None,
                "adjusted": g.incremental_retention_adjusted,
                "adjusted_ci": (list(g.incremental_retention_adjusted_ci)
                                if g.incremental_retention_adjusted_ci else None),
                "true_mean_uplift": (record or {}).get("contacts_check", {})
                .get("true_mean_uplift")}


def step(args: argparse.Namespace, seed: int) -> dict[str, object]:
    return Seed(args, seed).run()


# -- the summary -------------------------------------------------------------------------------
def summarise(runs: list[dict], args: argparse.Namespace) -> tuple[str, dict]:
    import numpy as np

    cycles = args.cycles
    judged = later_half(cycles)

    def margins(run: dict, s: str) -> np.ndarray:
        return np.array([r["truth"]["true_net_margin"] for r in run["records"][s]])

    shown = [s for s in STRATEGIES if s in runs[0]["records"]]
    per = {s: np.array([margins(r, s) for r in runs]) for s in shown}  # seeds x cycles
    first = lambda run: next(iter(run["records"].values()))[0]  # noqa: E731
    lines = [
        f"Scenario {args.scenario}, {args.customers:,} customers simulated for {args.days} days, "
        f"then {cycles} monthly cycles; seeds {', '.join(str(r['seed']) for r in runs)}; budget "
        f"{args.budget_per_customer} per customer of the first cycle's population ("
        + ", ".join(f"{first(r)['budget']:,.0f}" for r in runs)
        + ") every cycle; exploration: " + runs[0]["explore"] + ". True net margin = true "
        "retained value x gross margin - expected spend, from the shop's exact truth at each "
        "cutoff (not from the measured estimate). Mean over seeds.",
        "",
        "True net margin per cycle:",
        "",
        "| cycle | " + " | ".join(shown) + " |",
        "|---" * (len(shown) + 1) + "|",
    ]
    for c in range(cycles):
        lines.append(f"| {c + 1} | " + " | ".join(f"{per[s][:, c].mean():,.0f}"
                                                  for s in shown) + " |")
    cum = {s: per[s].sum(axis=1) for s in shown}
    late = {s: per[s][:, [c - 1 for c in judged]].mean(axis=1) for s in shown}
    lines.append("| **cumulative** | " + " | ".join(
        f"**{mean_std(list(cum[s]))[0]:,.0f} ± {mean_std(list(cum[s]))[1]:,.0f}**"
        for s in shown) + " |")
    lines.append(f"| mean of cycles {judged[0]}–{judged[-1]} | " + " | ".join(
        f"{mean_std(list(late[s]))[0]:,.0f} ± {mean_std(list(late[s]))[1]:,.0f}"
        for s in shown) + " |")
    ratio = lambda a, b: f"{a / b:.2f}" if b else "n/a"  # noqa: E731
    if ORACLE in late:
        orc = float(late[ORACLE].mean())
        lines += ["", f"What the loop's data allows (cycles {judged[0]}–{judged[-1]}, ratio to "
                  "the oracle): " + ", ".join(
                      f"{s.replace('ceiling: ', 'the ')} {ratio(float(late[s].mean()), orc)}"
                      for s in (EXACT, NOISY, NOISY_LATE, MODEL, AVERAGE, LEARNING)
                      if s in late) + "."]
    needed = (LEARNING, FROZEN, USUAL, RANDOM, ORACLE)
    if not all(s in late for s in needed):
        lines += ["", "Done-when: not judged (run without "
                  + ", ".join(s for s in needed if s not in late) + ")."]
        return _tail(lines, runs, shown), {}
    lr, fr, orc = (float(late[s].mean()) for s in (LEARNING, FROZEN, ORACLE))
    checks = {
        "learning >= 0.5 x oracle (cycles later half)": lr >= 0.5 * orc,
        "learning >= 1.5 x frozen (cycles later half)": lr >= 1.5 * fr,
        "cumulative learning > usual practice": float(cum[LEARNING].mean())
        > float(cum[USUAL].mean()),
        "cumulative learning > random targeting": float(cum[LEARNING].mean())
        > float(cum[RANDOM].mean()),
    }
    lines += ["", f"Done-when (cycles {judged[0]}–{judged[-1]}, mean per cycle): churnguard "
              f"learning {lr:,.0f}, oracle {orc:,.0f} (ratio {ratio(lr, orc)}; needs ≥ 0.5: "
              f"{'met' if checks[next(iter(checks))] else 'NOT met'}), frozen {fr:,.0f} (ratio "
              f"{ratio(lr, fr)}; needs ≥ 1.5: "
              f"{'met' if lr >= 1.5 * fr else 'NOT met'}"
              + (", frozen's margin is not positive, so the ratio says little" if fr <= 0 else "")
              + f"). Cumulative over {cycles} cycles: learning "
              f"{cum[LEARNING].mean():,.0f}, usual practice {cum[USUAL].mean():,.0f} ("
              f"{'met' if checks['cumulative learning > usual practice'] else 'NOT met'}), random "
              f"targeting {cum[RANDOM].mean():,.0f} ("
              f"{'met' if checks['cumulative learning > random targeting'] else 'NOT met'})."]
    lines += ["", "What the learning learns, per cycle (seed " + str(runs[0]["seed"]) + "): the "
              "uplift learner and the campaign rows it learned from; the correlation of the "
              "estimated effects with the true ones over the population per action (in brackets "
              "the mean estimated vs the mean true effect); the "
              "estimated and true saves of the contacted; the campaign measured when its 90-day "
              "window ended, against its contacts' true mean effect.", "",
              "| cycle | learner (rows, campaigns) | corr est/true per action (mean est. vs "
              "true) | est. saves / "
              "true saves | frozen: est. / true saves | measured campaign: effect [95% CI] vs "
              "truth |", "|---|---|---|---|---|---|"]
    for c in range(cycles):
        r, f = runs[0]["records"][LEARNING][c], runs[0]["records"][FROZEN][c]
        est = r.get("estimates", {})
        who = est.get("_learner")
        learner = f"{who['chosen']} ({who['rows']:,}, {who['campaigns']})" if who else "prior"
        corr = ", ".join((f"{a} {v['corr']:+.2f}" if v["corr"] is not None else f"{a} const")
                         + f" ({v['mean_estimate']:+.3f} vs {v['mean_true']:+.3f})"
                         for a, v in est.items() if not a.startswith("_"))
        m = r.get("measured")
        if m is None:
            measured = "–"
        elif "error" in m:
            measured = f"{m['campaign']}: not measurable ({m['error'][:80]}…)"
        else:
            ci = (f"[{m['ci'][0]:+.3f}, {m['ci'][1]:+.3f}]" if m["ci"] else "[no interval]")
            tm = m["true_mean_uplift"]
            measured = (f"{m['campaign']}: {m['incremental_retention']:+.3f} {ci} vs "
                        + (f"{tm:+.3f}" if tm is not None else "?"))
            if m.get("adjusted_ci"):  # adjusted for the plan's churn score (measure)
                measured += (f"; adjusted {m['adjusted']:+.3f} [{m['adjusted_ci'][0]:+.3f}, "
                             f"{m['adjusted_ci'][1]:+.3f}]")
        t, ft = r["truth"], f["truth"]
        lines.append(f"| {c + 1} | {learner} | {corr} | {t['estimated_saves']:.1f} / "
                     f"{t['true_saves']:.1f} | {ft['estimated_saves']:.1f} / "
                     f"{ft['true_saves']:.1f} | {measured} |")
    return _tail(lines, runs, shown), checks


def _tail(lines: list[str], runs: list[dict], shown: list[str]) -> str:
    """The summary's last lines: the contacts check, seconds and memory."""
    worst = max(r["contacts_check"]["max_abs_diff"] for run in runs
                for s in shown for r in run["records"][s])
    secs: dict[str, float] = {}
    for run in runs:
        for s in shown:
            for r in run["records"][s]:
                for k, v in r["seconds"].items():
                    secs[f"{k}"] = secs.get(k, 0.0) + v
    lines += ["", f"Check: the shop's own record of every contact (truth/contacts.parquet) "
              f"agrees with the truth the cycles were scored by within {worst:.1e}.",
              "", "Seconds, all seeds and strategies (a shared machine, noisy; cycles resumed "
              "from checkpoints count their first run): " + ", ".join(
                  f"{k} {v:,.0f}" for k, v in secs.items())
              + f"; peak RSS {max(r['peak_rss_mib'] for r in runs):.0f} MiB."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=DEFAULTS["customers"])
    parser.add_argument("--seeds", default=DEFAULTS["seeds"])
    parser.add_argument("--cycles", type=int, default=DEFAULTS["cycles"])
    parser.add_argument("--scenario", choices=("default", "drift"), default=DEFAULTS["scenario"])
    parser.add_argument("--days", type=int, default=DEFAULTS["days"],
                        help="days simulated before the first cycle")
    parser.add_argument("--budget-per-customer", type=float,
                        default=DEFAULTS["budget_per_customer"])
    parser.add_argument("--explore-share", type=float, default=None,
                        help="the plan's exploration share for the learning strategy (only "
                             "where churnguard's config has explore_share; default: the "
                             "config's own)")
    parser.add_argument("--control-share", type=float, default=None,
                        help="the control share of churnguard's own plans ([intervene] "
                             "control_share; default: the config's own)")
    parser.add_argument("--shrinkage", choices=("empirical_bayes", "none"), default=None,
                        help="how churnguard shrinks its effect estimates ([uplift] shrinkage; "
                             "default: the config's own)")
    parser.add_argument("--strategies", default=DEFAULTS["strategies"],
                        help="which to run, comma-separated, of: " + ", ".join(SHORT)
                        + " (default: all; cycle 1 of learning runs in any case)")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--load", default="", help=argparse.SUPPRESS)
    parser.add_argument("--step", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cycles < 1 or not math.isfinite(args.budget_per_customer):
        parser.error("--cycles must be >= 1 and the budget finite")
    unknown = set(args.strategies.split(",")) - set(SHORT)
    if unknown:
        parser.error(f"--strategies: unknown {', '.join(sorted(unknown))}; "
                     f"choose from {', '.join(SHORT)}")
    if args.step is not None:
        print(json.dumps(step(args, args.step), default=str))
        return 0
    seeds = [int(s) for s in args.seeds.split(",")]
    options = ["--customers", str(args.customers), "--cycles", str(args.cycles), "--scenario",
               args.scenario, "--days", str(args.days), "--budget-per-customer",
               str(args.budget_per_customer), "--strategies", args.strategies]
    for name in ("explore_share", "control_share", "shrinkage"):
        if getattr(args, name) is not None:
            options += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    load = [Path("/proc/loadavg").read_text().split()[:3]] if Path("/proc/loadavg").exists() \
        else []
    runs = run_seeds(__file__, seeds, options, summary=lambda run: "\n".join(
        f"   {s:<32} cumulative true net margin "
        f"{sum(r['truth']['true_net_margin'] for r in run['records'][s]):10.1f}"
        for s in run["records"]))
    if load:
        load.append(Path("/proc/loadavg").read_text().split()[:3])
    body, _ = summarise(runs, args)
    if load:
        body += (f"\n\nMachine load (1/5/15-min load average) at the start "
                 f"{' / '.join(load[0])}, at the end {' / '.join(load[-1])}.")
    print()
    print(body)
    if not args.no_write:
        command = "python benchmarks/bench_learning.py" + "".join(
            f" --{k.replace('_', '-')} {getattr(args, k)}" for k, v in DEFAULTS.items()
            if getattr(args, k) != v)
        write_section("learning", body, command=command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
