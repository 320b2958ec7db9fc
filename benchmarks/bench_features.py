"""Point-in-time feature speed and memory: churnguard (DuckDB SQL) vs the same features in pandas.

    python benchmarks/bench_features.py [--users 200000] [--events 10000000] [--no-write]

Generates (once, cached in benchmarks/.data) a store of N synthetic customers and M events with a
realistic type mix (views and visits dominate, orders ~6 %, reviews, returns, tickets, coupons),
customers with different rates and lifetimes. Then, each step in a fresh process so its peak RSS
is its own:

- churnguard: population and labels at the cutoff(s), then ``build_features`` for that
  population, at one cutoff and at three cutoffs (one query);
- pandas: the events table loaded into a DataFrame, then the same features with groupby/merge, one
  cutoff at a time — the notebook a user would otherwise write.

Each step writes its frame; the driver checks that the two agree column by column.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from results import peak_rss_mib, run_step, write_section  # noqa: E402

DATA = HERE / ".data"
TYPE_MIX = {
    "view": 0.38, "visit": 0.12, "search": 0.10, "login": 0.05, "cart_add": 0.11,
    "cart_remove": 0.035, "order": 0.065, "return": 0.008, "review": 0.015,
    "support_ticket": 0.006, "ticket_resolved": 0.005, "coupon_redeem": 0.011,
}
START = "2024-01-01T00:00:00"
DAYS = 730
CUTOFFS_1 = ["2025-10-01"]
CUTOFFS_3 = ["2025-08-02", "2025-09-01", "2025-10-01"]


# -- data ----------------------------------------------------------------------------------------
def generate(n_users: int, n_events: int) -> Path:
    path = DATA / f"features_{n_users}_{n_events}.duckdb"
    if path.exists():
        return path
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from churnguard.store import Store

    DATA.mkdir(exist_ok=True)
    rng = np.random.default_rng(7)
    # customers: an activity rate (gamma) and a life span inside the two years
    rate = rng.gamma(0.8, 1.0, n_users)
    born = rng.uniform(0, DAYS - 30, n_users)
    life = np.minimum(rng.exponential(400, n_users), DAYS - born)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    store = Store.open(tmp)
    start = np.datetime64(START, "us")
    chunk = 2_000_000
    types = np.array(list(TYPE_MIX))
    probs = np.array(list(TYPE_MIX.values()))
    probs = probs / probs.sum()
    done, sessions_done = 0, 0
    while done < n_events:
        # sessions of ~6 events (geometric lengths) within 30 minutes, at random times of a
        # customer's life span; customers with higher rates have more sessions
        n_sessions = max(1, min(chunk, n_events - done) // 6)
        length = rng.geometric(1 / 6, n_sessions)
        length = length[: max(1, int(np.searchsorted(np.cumsum(length),
                                                      n_events - done)) + 1)]
        length[-1] -= max(0, int(length.sum()) - (n_events - done))
        length = length[length > 0]
        s_user = rng.choice(n_users, size=len(length), p=rate / rate.sum())
        s_day = born[s_user] + rng.uniform(0, 1, len(length)) * life[s_user]
        which = np.repeat(np.arange(len(length)), length)
        n = len(which)
        user = s_user[which]
        at_day = s_day[which] + rng.uniform(0, 1 / 48, n)
        ts = start + (at_day * 86400e6).astype("timedelta64[us]")
        kind = types[rng.choice(len(types), size=n, p=probs)]
        is_order, is_review = kind == "order", kind == "review"
        uid = pc.binary_join_element_wise("c", pc.cast(pa.array(user), pa.string()), "")
        session = pc.binary_join_element_wise(
            "s", pc.cast(pa.array(sessions_done + which), pa.string()), "")
        sessions_done += len(length)
        item = rng.integers(0, 20_000, n)
        has_cat = kind != "view"
        table = pa.table({
            "event_id": pc.binary_join_element_wise(
                "e", pc.cast(pa.array(np.arange(done, done + n)), pa.string()), ""),
            "user_id": uid,
            "ts": pa.array(ts, type=pa.timestamp("us")),
            "type": pa.array(kind),
            "item_id": pc.binary_join_element_wise("i", pc.cast(pa.array(item), pa.string()), ""),
            "category": pa.array(np.char.add("cat", (item % 40).astype(str)), mask=~has_cat),
            "amount": pa.array(np.round(rng.gamma(2.0, 30.0, n), 2), mask=~is_order),
            "rating": pa.array(rng.integers(1, 6, n).astype(np.int8), mask=~is_review),
            "session_id": pa.array(session, mask=pa.array(rng.random(n) < 0.1)),
        })
        store.con.register("chunk", table)
        store.con.execute("""
            INSERT INTO events (event_id, user_id, ts, type, item_id, category, amount, rating,
                                session_id, batch_id)
            SELECT event_id, user_id, ts, type, item_id, category, amount, rating, session_id,
                   'bench' FROM chunk""")
        store.con.unregister("chunk")
        done += n
    signup = start + ((born - rng.uniform(0, 60, n_users)) * 86400e6).astype("timedelta64[us]")
    users = pa.table({"user_id": [f"c{k}" for k in range(n_users)],
                      "signup_ts": pa.array(signup, type=pa.timestamp("us"))})
    store.con.register("u", users)
    store.con.execute("INSERT INTO users SELECT user_id, signup_ts, 'bench' FROM u")
    store.con.execute("""
        INSERT INTO user_attributes
        SELECT user_id, 'plan', ['basic', 'plus', 'gold'][(1 + hash(user_id) % 3)::BIGINT],
               'bench' FROM u
        UNION ALL
        SELECT user_id, 'age', (18 + hash(user_id || 'a') % 60)::BIGINT::VARCHAR, 'bench' FROM u""")
    store.con.execute("""
        INSERT INTO items SELECT 'i' || k, 'cat' || (k % 40), 10.0, 'item ' || k, 'bench'
        FROM range(20000) r(k)""")
    store.con.execute("CHECKPOINT")
    store.close()
    tmp.rename(path)
    return path


# -- measured steps ------------------------------------------------------------------------------
def step_churnguard(store_path: str, cutoffs: list[str], out: str) -> dict[str, object]:
    from churnguard.config import ChurnDefinition
    from churnguard.features import build_features
    from churnguard.labels import population_and_labels
    from churnguard.store import Store

    start = time.perf_counter()
    with Store.open(store_path, read_only=True) as store:
        pop = population_and_labels(store, definition=ChurnDefinition(), cutoffs=cutoffs)
        labelled = time.perf_counter()
        frame = build_features(store, pop)
    done = time.perf_counter()
    frame.reset_index().to_parquet(out)
    return {"seconds": done - start, "labels_seconds": labelled - start,
            "features_seconds": done - labelled, "rows": len(frame),
            "columns": frame.shape[1], "peak_rss_mib": peak_rss_mib()}


def pandas_features(ev, items, users, attrs, pop_users, cutoff):
    """The notebook way: filter, groupby, merge, for one cutoff."""
    import numpy as np
    import pandas as pd

    T = pd.Timestamp(cutoff)
    e = ev[(ev.ts < T) & ev.user_id.isin(pop_users)].copy()
    e["age"] = (T - e.ts) / pd.Timedelta(days=1)
    out = pd.DataFrame(index=pd.Index(sorted(pop_users), name="user_id"))
    g = e.groupby("user_id")
    out["days_since_last_event"] = g.age.min()
    o = e[e.type == "order"]
    go = o.groupby("user_id")
    out["days_since_last_activity"] = go.age.min()
    out["days_since_last_order"] = go.age.min()

    def count(frame):
        return frame.groupby("user_id").size().reindex(out.index, fill_value=0)

    out["events_30d"] = count(e[e.age <= 30])
    out["events_90d"] = count(e[e.age <= 90])
    out["orders_total"] = count(o)
    out["orders_in_lookback"] = count(o[o.age <= 365])
    o_days = o.assign(d=o.ts.dt.floor("D"))[["user_id", "d"]].drop_duplicates()
    out["order_days_total"] = count(o_days)
    out["order_amount_sum"] = go.amount.sum()
    out["order_amount_mean"] = go.amount.mean()
    out["order_amount_max"] = go.amount.max()
    for w in (30, 90, 180):
        cur, prev = o[o.age <= w], o[(o.age > w) & (o.age <= 2 * w)]
        out[f"orders_{w}d"] = count(cur)
        out[f"orders_prev_{w}d"] = count(prev)
        out[f"orders_trend_{w}d"] = (out[f"orders_{w}d"] + 1) / (out[f"orders_prev_{w}d"] + 1)
        out[f"spend_{w}d"] = cur.groupby("user_id").amount.sum().reindex(out.index, fill_value=0)
        out[f"spend_prev_{w}d"] = prev.groupby("user_id").amount.sum().reindex(out.index,
                                                                             fill_value=0)
        out[f"spend_trend_{w}d"] = (out[f"spend_{w}d"] + 1) / (out[f"spend_prev_{w}d"] + 1)
    o_days = o_days.sort_values(["user_id", "d"])
    o_days["gap"] = o_days.groupby("user_id").d.diff() / pd.Timedelta(days=1)
    gg = o_days.groupby("user_id").gap
    out["order_gap_mean_days"] = gg.mean()
    out["order_gap_std_days"] = gg.std()
    out["order_gap_last_days"] = gg.last()
    out["overdue_ratio"] = out.days_since_last_order / out.order_gap_mean_days
    for w in (30, 90):
        recent = e[e.age <= w]
        out[f"views_{w}d"] = count(recent[recent.type == "view"])
        out[f"searches_{w}d"] = count(recent[recent.type == "search"])
        out[f"visits_{w}d"] = count(recent[recent.type == "visit"])
        out[f"sessions_{w}d"] = recent.groupby("user_id").session_id.nunique().reindex(
            out.index, fill_value=0)
    out["days_since_last_visit"] = e[e.type == "visit"].groupby("user_id").age.min()
    recent = e[e.age <= 90].copy()
    recent["basket"] = recent.session_id.fillna("day:" + recent.ts.dt.strftime("%Y-%m-%d"))
    adds = recent[recent.type == "cart_add"]
    ordered = recent[recent.type == "order"][["user_id", "basket"]].drop_duplicates()
    adds = adds.merge(ordered.assign(hit=True), on=["user_id", "basket"], how="left")
    out["cart_adds_90d"] = count(adds)
    out["cart_removes_90d"] = count(recent[recent.type == "cart_remove"])
    out["cart_abandonment_90d"] = adds.hit.isna().groupby(adds.user_id).mean()
    cats = o.merge(items, on="item_id", how="left", suffixes=("", "_item"))
    cats["cat"] = cats.category.fillna(cats.category_item)
    per = cats.dropna(subset=["cat"]).groupby(["user_id", "cat"]).size()
    share = per / per.groupby(level=0).transform("sum")
    out["order_categories_distinct"] = per.groupby(level=0).size().reindex(out.index, fill_value=0)
    out["order_category_hhi"] = (share ** 2).groupby(level=0).sum()
    out["returns_total"] = count(e[e.type == "return"])
    out["return_rate"] = out.returns_total / out.orders_total.replace(0, np.nan)
    r = e[e.type == "review"]
    out["reviews_total"] = count(r)
    rated = r.dropna(subset=["rating"]).sort_values(["user_id", "ts", "event_id"])
    out["review_rating_mean"] = rated.groupby("user_id").rating.mean()
    out["review_rating_last"] = rated.groupby("user_id").rating.last()
    out["review_low_share"] = (rated.rating <= 2).groupby(rated.user_id).mean()
    out["days_since_last_review"] = r.groupby("user_id").age.min()
    tk = e[e.type == "support_ticket"]
    res = e[e.type == "ticket_resolved"]
    out["tickets_total"] = count(tk)
    matched = tk.merge(res[["user_id", "session_id"]].dropna().drop_duplicates().assign(m=True),
                       on=["user_id", "session_id"], how="left")
    still = matched[matched.m.isna()].sort_values(["user_id", "ts", "event_id"])
    still["k"] = still.groupby("user_id").cumcount() + 1
    fifo = res[res.session_id.isna()].groupby("user_id").size()
    still = still[still.k > still.user_id.map(fifo).fillna(0)]
    out["tickets_unresolved"] = count(still)
    out["days_since_last_ticket"] = tk.groupby("user_id").age.min()
    out["oldest_unresolved_ticket_days"] = still.groupby("user_id").age.max()
    c = e[e.type == "coupon_redeem"]
    out["coupons_redeemed"] = count(c)
    out["coupons_redeemed_90d"] = count(c[c.age <= 90])
    signup = users.set_index("user_id").signup_ts.reindex(out.index)
    signup = signup.where(signup < T)
    first = g.ts.min().reindex(out.index)
    out["tenure_days"] = (T - pd.concat([signup, first], axis=1).min(axis=1)) / pd.Timedelta(days=1)
    wide = attrs.pivot(index="user_id", columns="name", values="value").reindex(out.index)
    out["attr_age"] = pd.to_numeric(wide["age"])
    out["attr_plan"] = wide["plan"].astype("category")
    out["cutoff"] = T
    return out.reset_index().set_index(["user_id", "cutoff"])


def step_pandas(store_path: str, cutoffs: list[str], out: str) -> dict[str, object]:
    import duckdb
    import pandas as pd

    start = time.perf_counter()
    con = duckdb.connect(store_path, read_only=True)
    ev = con.execute("SELECT event_id, user_id, ts, type, item_id, category, amount, rating, "
                     "session_id FROM events").df()
    items = con.execute("SELECT item_id, category FROM items").df()
    users = con.execute("SELECT user_id, signup_ts FROM users").df()
    attrs = con.execute("SELECT user_id, name, value FROM user_attributes").df()
    con.close()
    loaded = time.perf_counter()
    frames = []
    for cutoff in cutoffs:
        T = pd.Timestamp(cutoff)
        orders = ev[(ev.type == "order") & (ev.ts < T) & (ev.ts >= T - pd.Timedelta(days=365))]
        frames.append(pandas_features(ev, items, users, attrs, set(orders.user_id), cutoff))
    frame = pd.concat(frames)
    done = time.perf_counter()
    frame.reset_index().to_parquet(out)
    return {"seconds": done - start, "load_seconds": loaded - start,
            "features_seconds": done - loaded, "rows": len(frame), "columns": frame.shape[1],
            "peak_rss_mib": peak_rss_mib()}


def compare(churnguard_file: str, pandas_file: str) -> tuple[int, list[str]]:
    """Columns both computed; the names of those that disagree (beyond float rounding)."""
    import numpy as np
    import pandas as pd

    a = pd.read_parquet(churnguard_file).set_index(["user_id", "cutoff"]).sort_index()
    b = pd.read_parquet(pandas_file).set_index(["user_id", "cutoff"]).sort_index()
    if not a.index.equals(b.index):
        return 0, ["(the populations differ)"]
    common = [c for c in a.columns if c in b.columns]
    bad = []
    for column in common:
        x, y = a[column], b[column]
        if isinstance(x.dtype, pd.CategoricalDtype) or isinstance(y.dtype, pd.CategoricalDtype):
            same = (x.astype(object).fillna("") == y.astype(object).fillna("")).all()
        else:
            x, y = x.astype(float).to_numpy(), y.astype(float).to_numpy()
            same = np.allclose(x, y, rtol=1e-9, atol=1e-6, equal_nan=True)
        if not same:
            bad.append(column)
    return len(common), bad


# -- driver --------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--no-write", action="store_true", help="print, do not touch RESULTS.md")
    parser.add_argument("--step", nargs=4, metavar=("KIND", "STORE", "CUTOFFS", "OUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        kind, store, cutoffs, out = args.step
        fn = step_churnguard if kind == "churnguard" else step_pandas
        print(json.dumps(fn(store, cutoffs.split(","), out)))
        return

    t0 = time.perf_counter()
    store = generate(args.users, args.events)
    print(f"store ready: {store} ({time.perf_counter() - t0:.0f} s)", flush=True)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, cutoffs in (("1 cutoff", CUTOFFS_1), ("3 cutoffs", CUTOFFS_3)):
            for kind in ("churnguard", "pandas"):
                out = str(Path(tmp) / f"{kind}_{len(cutoffs)}.parquet")
                results[(label, kind)] = run_step([__file__, "--step", kind, str(store),
                                                   ",".join(cutoffs), out])
                print(label, kind, results[(label, kind)], flush=True)
            n_common, bad = compare(str(Path(tmp) / f"churnguard_{len(cutoffs)}.parquet"),
                                    str(Path(tmp) / f"pandas_{len(cutoffs)}.parquet"))
            results[(label, "agree")] = (n_common, bad)
            print(label, f"{n_common - len(bad)}/{n_common} columns agree; differ: {bad}",
                  flush=True)

    lines = [
        f"{args.users:,} customers, {args.events:,} events (synthetic, realistic type mix); "
        "features for the rule population (activity = order, lookback 365 days) at the "
        "cutoff(s). Each run in a fresh process; peak RSS from getrusage.",
        "",
        "| cutoffs | rows | tool | total s | of which | peak RSS MiB | speed-up |",
        "|---|---|---|---|---|---|---|",
    ]
    for label in ("1 cutoff", "3 cutoffs"):
        cg, pd_ = results[(label, "churnguard")], results[(label, "pandas")]
        lines.append(f"| {label} | {cg['rows']:,} | churnguard (DuckDB SQL) | "
                     f"{cg['seconds']:.1f} | "
                     f"labels {cg['labels_seconds']:.1f}, features {cg['features_seconds']:.1f} | "
                     f"{cg['peak_rss_mib']:.0f} | {pd_['seconds'] / cg['seconds']:.1f}× |")
        lines.append(f"| {label} | {pd_['rows']:,} | pandas (groupby/merge) | "
                     f"{pd_['seconds']:.1f} | load {pd_['load_seconds']:.1f}, features "
                     f"{pd_['features_seconds']:.1f} | {pd_['peak_rss_mib']:.0f} | 1.0× |")
    lines.append("")
    for label in ("1 cutoff", "3 cutoffs"):
        n_common, bad = results[(label, "agree")]
        lines.append(f"- {label}: {n_common - len(bad)} of {n_common} shared columns agree "
                     f"(pandas vs churnguard){'; differ: ' + ', '.join(bad) if bad else ''}.")
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        command = "python benchmarks/bench_features.py"
        if (args.users, args.events) != (200_000, 10_000_000):
            command += f" --users {args.users} --events {args.events}"
        write_section("features", body, command=command)


if __name__ == "__main__":
    main()
