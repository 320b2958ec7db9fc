"""The agents' assistant on the simulated shop: hit@3 of retrieval per language and per encoder,
and the abstain thresholds chosen from data (issue 20, item 5; docs/assistant.md).

Two sets of held-out tickets, both written by the simulator's composer:

* **shop**: the shop's own tickets. The retrieval base is every ticket resolved (with its reply)
  that opened before the split day (70% of the window); the queries are the tickets opened from
  that day on. The shop's tickets come from late or defective orders, so they are about two
  topics only (delivery, quality): the chance level is high and printed beside.
* **four topics**: ticket texts of all four topics (delivery, quality, price, service) in both
  languages, as the composer writes them (256 variants each). Split ``texts``: 70% of the
  distinct texts at random form the base, the rest are the queries. Split ``phrasings``: 3 of
  the 10 topic sentences of every topic and language are held out; the queries are the texts
  written only from them, the base those written from none of them (unseen sentences).

Each resolved ticket of the four-topic sets carries the reply the simulator writes for a ticket
of its topic and language (``compose_reply``, the variant a hash of the text, as the shop picks
one per thread), so that the base holds what a store holds: tickets with their replies.

hit@3: one of the three most similar resolved tickets has the query's true topic (whether or not
the assistant would abstain on the query; the share it answers is printed beside). Each route
(``en``, ``zh``: a text goes by its majority script) is measured through both retrieval
encoders on the same splits (``[assistant] encoder_en`` / ``encoder_zh``): ``use``, the
multilingual Universal Sentence Encoder, and ``bilingual``, MiniLM for English and the shop's
character n-gram encoder for Chinese (fitted on the store's review and ticket texts, as
``shop_text_encoder`` does). The better of a route, by the rule printed with the table: the
higher hit@3 on held-out phrasings (min over the splits), the hardest set; ties by held-out
texts, then the shop set.

Two methods on the same splits: **text**, the open ticket against the resolved tickets' texts
(``reply_weight`` 0, the method before), and **text + reply**, the similarity blending the
ticket's text and its reply (``[assistant] reply_weight``, default ``REPLY_WEIGHT``). The weight
is chosen without the test queries: inside each split's base, 3 of the 7 topic sentences left
are held out again (3 nested splits), and the weight of a grid with the higher nested hit@3 (min
over the nested splits; ties: the smaller weight) is the pick; the table shows each pick and the
test hit@3 at it, beside the product's fixed default.

The abstain threshold of each route and encoder: the one the product picks from the store's
resolved tickets (leave-one-out, 95% answered), and the fixed fallback for routes with too few
resolved tickets (the 5th percentile of the held-out shop tickets' best similarity, rounded
down to 0.05); for both, the share of held-out tickets answered and of texts that are no
complaint at all turned away.

    python benchmarks/bench_assistant.py --users 5000 --days 365 --seed 0
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import churnguard  # noqa: E402, F401  (before torch: OMP_WAIT_POLICY)
from results import DATA, cached_shop, write_section  # noqa: E402

SPLIT_SHARE = 0.7
SPLITS = 3
K = 3
ROUTES = ("en", "zh")
ENCODERS = ("use", "bilingual")
GRID = (0.0, 0.25, 0.5, 0.75, 1.0)  # reply weights tried on the nested splits
NESTED = 3


class _Once:
    """An encoder that encodes each distinct text once over the whole benchmark (the same
    texts are bases and queries of several splits)."""

    def __init__(self, encoder) -> None:
        self.encoder, self.key, self.use = encoder, encoder.key, encoder.use
        self._seen: dict[str, object] = {}

    def encode(self, texts):  # -> np.ndarray
        import numpy as np

        new = sorted({t for t in texts if t not in self._seen})
        if new:
            self._seen.update(zip(new, self.encoder.encode(new)))
        return np.stack([self._seen[t] for t in texts]) if texts else self.encoder.encode([])


def _hit(index, queries, topics_of, weight: float, k: int = K
         ):  # -> list[tuple[str, bool, float]]
    """Per query (text, true topic): (route, hit@k, best cosine to a resolved ticket's text:
    what the abstain threshold is compared with) at reply weight ``weight``."""
    from churnguard.assistant import route_of

    out = []
    for text, topic in queries:
        found = index.lookup(text, k=k, reply_weight=weight)
        best = found.best_text_similarity
        out.append((route_of(text), any(topics_of[m.ticket.ticket_id] == topic
                                        for m in found.matches),
                    float("nan") if best is None else best))
    return out


def _chance(base_topics, query_topics, k: int = K) -> float:
    """hit@k of k base tickets drawn at random (with replacement): 1 - sum_t q_t (1 - b_t)^k."""
    import collections

    b, q = collections.Counter(base_topics), collections.Counter(query_topics)
    nb, nq = sum(b.values()), sum(q.values())
    return 1.0 - sum(n / nq * (1.0 - b[t] / nb) ** k for t, n in q.items())


def shop_set(store, sim: Path, encoder, weights):  # -> (rows per weight, chance, index, ...)
    import pandas as pd

    from churnguard.assistant import resolved_tickets, route_of
    from churnguard.assistant.retrieval import TicketIndex

    truth = pd.read_parquet(sim / "truth" / "tickets.parquet")
    topic_of = dict(zip(truth["event_id"], truth["topic"]))
    split = truth["ts"].min() + SPLIT_SHARE * (truth["ts"].max() - truth["ts"].min())
    base = [t for t in resolved_tickets(store)
            if pd.Timestamp(t.opened_at, tz="UTC") < split]
    queries = truth[truth["ts"] >= split]
    events = pd.read_parquet(sim / "events.parquet", columns=["event_id", "text"])
    queries = queries.merge(events, on="event_id")
    index = TicketIndex(base, dict.fromkeys(ROUTES, encoder))
    pairs = list(zip(queries["text"], queries["topic"]))
    rows = {w: _hit(index, pairs, topic_of, w) for w in weights}
    chance = {}
    for route in ROUTES:
        mine = [t for t in base if route_of(t.text) == route]
        qs = [tp for (tx, tp) in zip(queries["text"], queries["topic"]) if route_of(tx) == route]
        chance[route] = _chance([topic_of[t.ticket_id] for t in mine], qs) if qs else math.nan
    return rows, chance, index, len(base), len(queries)


def _composed_rows():  # -> list[tuple[text, topic, zh, phrasing cores]]
    """The composer's tickets of four topics: text, true topic, written for a Chinese customer,
    the indices of its topic sentences."""
    from churnguard.simulate.text import _bank

    texts, index, truth = _bank()
    return [(texts[i], truth[texts[i]][1], key[3], frozenset(truth[texts[i]][4].split("+")))
            for key, ids in index.items() if key[0] == "ticket" for i in ids.tolist()]


def _resolved(rows, ids):  # -> (list[ResolvedTicket], topic per ticket id)
    """Resolved tickets of ``rows[ids]``, each with the reply the simulator writes for its topic
    and language (the variant a hash of the text, as the shop hashes customer and thread)."""
    import zlib

    from churnguard.assistant import ResolvedTicket
    from churnguard.simulate.text import TOPICS, VARIANTS, compose_reply

    base = [ResolvedTicket(ticket_id=f"c{j}", user_id="u", opened_at=None, text=rows[j][0],
                           resolved_at=None, reply=compose_reply(
                               topic=TOPICS.index(rows[j][1]), zh=rows[j][2],
                               variant=zlib.crc32(rows[j][0].encode()) % VARIANTS))
            for j in ids]
    return base, {f"c{j}": rows[j][1] for j in ids}


def _held_out(rows, candidates, held) -> tuple[list[int], list[int]]:
    """(base, queries) among row indices ``candidates``: texts written from none of the
    ``held`` sentences, texts written only from them."""
    return ([j for j in candidates if not rows[j][3] & held],
            [j for j in candidates if rows[j][3] <= held])


def _route_rates(index, rows, queries, topics_of, weights):  # -> {(route, w): hit@3}
    pairs = [(rows[j][0], rows[j][1]) for j in queries]
    out = {}
    for w in weights:
        hit = _hit(index, pairs, topics_of, w)
        for route in ROUTES:
            out[route, w] = _rate(hit, route)[0]
    return out


def composed_set(encoder, split: int, weights):  # -> (rows per mode and weight, nested, answered)
    """The four-topic sets of one split: per mode (``texts``, ``phrasings``) and reply weight
    the hit rows; the nested hit@3 inside the phrasings base ((route, w) → min over the
    :data:`NESTED` nested splits); per (mode, route, weight) the share of queries answered at
    the threshold the product chooses from the base."""
    import numpy as np

    from churnguard.assistant.retrieval import TicketIndex

    rows = _composed_rows()
    rng = np.random.default_rng(split)
    held = frozenset(str(c) for c in rng.choice(10, size=3, replace=False))
    train = rng.random(len(rows)) < SPLIT_SHARE
    out, answered, nested = {}, {}, {}
    for mode in ("texts", "phrasings"):
        if mode == "texts":
            in_base = np.flatnonzero(train).tolist()
            in_query = np.flatnonzero(~train).tolist()
        else:
            in_base, in_query = _held_out(rows, range(len(rows)), held)
        base, topic_of = _resolved(rows, in_base)
        index = TicketIndex(base, dict.fromkeys(ROUTES, encoder))
        queries = [(rows[j][0], rows[j][1]) for j in in_query]
        out[mode] = {w: _hit(index, queries, topic_of, w) for w in weights}
        for w in weights:
            for route in ROUTES:
                best = [s for r, _, s in out[mode][w] if r == route]
                answered[mode, route, w] = float(np.mean(
                    np.array(best) >= index.threshold(route, 0.95)))
        if mode == "phrasings":
            rest = sorted({str(c) for c in range(10)} - held)
            per = []
            for k in range(NESTED):
                r2 = np.random.default_rng(1000 + 10 * split + k)
                held2 = frozenset(rest[i] for i in r2.choice(len(rest), size=3, replace=False))
                sub_base, sub_query = _held_out(rows, in_base, held2)
                sub, sub_topics = _resolved(rows, sub_base)
                per.append(_route_rates(TicketIndex(sub, dict.fromkeys(ROUTES, encoder)), rows,
                                        sub_query, sub_topics, GRID))
            nested = {key: min(p[key] for p in per) for key in per[0]}
    return out, nested, answered


def _pick(nested: dict, route: str) -> float:
    """The reply weight with the higher nested hit@3 (3 decimals), ties: the smaller weight."""
    return max(GRID, key=lambda w: (round(nested[route, w], 3), -w))


def not_complaints():  # -> list[str]
    """Texts about nothing a ticket is about: positive reviews, off-topic remarks, searches."""
    from churnguard.simulate.text import _PARTS, template_table

    texts, index = template_table()
    out = [texts[i] for key, ids in index.items() if key[0] == "review" and key[2]
           for i in ids.tolist()[:40]]
    out += [texts[i] for key, ids in index.items() if key[0] == "search" for i in ids.tolist()]
    out += _PARTS["en"]["parts"]["noise"] + _PARTS["zh"]["parts"]["noise"]
    return out


def _rate(rows, route: str) -> tuple[float, int]:
    hits = [h for r, h, _ in rows if r == route]
    return (sum(hits) / len(hits) if hits else math.nan), len(hits)


def _better(hits: dict, route: str, method: str) -> str:
    """The encoder with the higher hit@3 of ``method`` on held-out phrasings (min over splits),
    ties by held-out texts, then by the shop set; still tied: ``use`` (nothing to fit)."""
    return max(ENCODERS, key=lambda e: (round(hits[(e, method, "phrasings", route)], 3),
                                        round(hits[(e, method, "texts", route)], 3),
                                        round(hits[(e, method, "shop", route)], 3), e == "use"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="print, do not write RESULTS.md")
    args = parser.parse_args()
    import numpy as np

    from churnguard.assistant import route_of
    from churnguard.assistant.retrieval import REPLY_WEIGHT, route_encoders
    from churnguard.store import Store

    methods = {"text": 0.0, "text + reply": REPLY_WEIGHT}
    weights = tuple(sorted(set(GRID) | set(methods.values())))
    shop = cached_shop(DATA / f"assistant_{args.users}_{args.days}_{args.seed}",
                       users=args.users, days=args.days, seed=args.seed)
    others = not_complaints()
    hits, means, answered, counts, picks = {}, {}, {}, {}, []
    shop_rows, indexes, other_best = {}, {}, {}
    with Store.open(shop.db) as store:
        for name in ENCODERS:
            encoder = _Once(route_encoders(store, dict.fromkeys(ROUTES, name))["zh"])
            rows, chance, index, n_base, n_queries = shop_set(
                store, sim=shop.sim, encoder=encoder, weights=tuple(methods.values()))
            composed = [composed_set(encoder, split, weights) for split in range(SPLITS)]
            indexes[name], shop_rows[name] = index, rows[0.0]
            other_best[name] = [(route_of(t), index.lookup(t, k=1).best_text_similarity)
                                for t in others]
            for method, w in methods.items():
                for route in ROUTES:
                    key = (name, method, "shop", route)
                    hits[key], counts["shop", route] = _rate(rows[w], route)
                    best = np.array([b for r, _, b in rows[w] if r == route])
                    answered[key] = float(np.mean(best >= index.threshold(route, 0.95)))
                    for mode in ("texts", "phrasings"):
                        key = (name, method, mode, route)
                        per_split = [_rate(c[0][mode][w], route)[0] for c in composed]
                        hits[key], means[key] = min(per_split), sum(per_split) / len(per_split)
                        answered[key] = sum(c[2][mode, route, w] for c in composed) / SPLITS
                        counts[mode, route] = _rate(composed[0][0][mode][w], route)[1]
            for split, (out, nested, _) in enumerate(composed):
                for route in ROUTES:
                    w = _pick(nested, route)
                    picks.append((name, split, route, nested, w,
                                  _rate(out["phrasings"][w], route)[0],
                                  _rate(out["phrasings"][REPLY_WEIGHT], route)[0],
                                  _rate(out["phrasings"][0.0], route)[0]))
            print(f"{name} done", flush=True)
    lines = ["Retrieval of similar resolved tickets (hit@3: one of the 3 most similar has the "
             "query's true topic, counted over every query whether or not the assistant would "
             "abstain on it), per language route (a text goes by its majority script), per "
             "retrieval encoder and per method on the same splits. Encoders: **use** "
             "(multilingual Universal Sentence Encoder) and **bilingual** (MiniLM for en, the "
             "shop's character n-gram encoder for zh). Methods: **text**, the open ticket "
             "against the resolved tickets' texts (the assistant before), and **text + reply**, "
             f"the similarity blending each resolved ticket's text and its reply (reply weight "
             f"{REPLY_WEIGHT}, the default). *Answered*: the share of the queries the assistant "
             "would not abstain on: whose nearest resolved ticket text reaches the threshold "
             "the product chooses from that base (95% of its tickets, leave-one-out); the "
             "abstain rule reads ticket texts only, so it is the same for both methods. For "
             "the four-topic sets the mean over the splits.", "",
             f"Shop set: {n_base} resolved tickets with replies opened before the split day, "
             f"{n_queries} tickets opened after it as queries (2 topics: chance is high). "
             "Four-topic sets: every base ticket carries the reply the simulator writes for its "
             "topic and language.", "",
             "| set | encoder | method | en hit@3 | zh hit@3 | answered en / zh "
             "| queries en / zh | chance en / zh |",
             "|---|---|---|---|---|---|---|---|"]
    labels = {"shop": "shop, later tickets",
              "texts": f"four topics, held-out texts ({SPLITS} splits: min (mean))",
              "phrasings": f"four topics, held-out phrasings ({SPLITS} splits: min (mean))"}
    for mode in ("shop", "texts", "phrasings"):
        for name in ENCODERS:
            for method in methods:
                ch = (f"{chance['en']:.3f} / {chance['zh']:.3f}" if mode == "shop"
                      else "0.578 / 0.578")
                cell = {r: f"{hits[(name, method, mode, r)]:.3f}" + (
                    "" if mode == "shop" else f" ({means[(name, method, mode, r)]:.3f})")
                    for r in ROUTES}
                ans = " / ".join(f"{answered[(name, method, mode, r)]:.3f}" for r in ROUTES)
                lines.append(f"| {labels[mode]} | {name} | {method} | {cell['en']} | "
                             f"{cell['zh']} | {ans} | {counts[mode, 'en']} / "
                             f"{counts[mode, 'zh']} | {ch} |")
    better = {route: _better(hits, route, "text + reply") for route in ROUTES}
    lines += ["", "The better encoder per route with text + reply (higher hit@3 on held-out "
              "phrasings, min over the splits; ties by held-out texts, then the shop set): "
              + ", ".join(f"{route} **{better[route]}**" for route in ROUTES) + ".", ""]
    grid = " / ".join(f"{w:g}" for w in GRID)
    lines += ["Choosing the reply weight without the test queries: inside each split's "
              "held-out-phrasings base, 3 of the 7 topic sentences it holds are held out again "
              f"({NESTED} nested splits); per route the weight of the grid ({grid}) with the "
              "higher nested hit@3 (min over the nested splits; ties: the smaller weight) is the "
              "pick. Beside it the split's test hit@3 at the pick, at the product's default "
              f"({REPLY_WEIGHT}) and with the text alone (0).", "",
              f"| encoder | split | route | nested hit@3 at {grid} | pick | test hit@3 at the pick "
              "| at the default | text alone |", "|---|---|---|---|---|---|---|---|"]
    for name, split, route, nested, w, at_pick, at_default, alone in picks:
        cells = " / ".join(f"{nested[route, g]:.3f}" for g in GRID)
        lines.append(f"| {name} | {split} | {route} | {cells} | {w:g} | {at_pick:.3f} | "
                     f"{at_default:.3f} | {alone:.3f} |")
    lines += ["", "Abstain thresholds per route and encoder (on ticket texts, for both "
              "methods). *Store*: what the product chooses from the base itself (the "
              "similarity 95% of the resolved tickets reach to their most similar other one, "
              "`TicketIndex.threshold`). *Fallback*: the 5th percentile of the best similarity "
              "of the held-out shop tickets, rounded down to 0.05, used when a route has fewer "
              "than 20 resolved tickets. For each: the share of held-out tickets answered and of "
              "texts that are no complaint at all (positive reviews, off-topic remarks, "
              "searches) turned away.", "",
              "| route | encoder | best similarity of held-out tickets: p5 / median | threshold "
              "| held-out tickets answered | non-complaints turned away |",
              "|---|---|---|---|---|---|"]
    for route in ROUTES:
        for name in ENCODERS:
            best = np.array([b for r, _, b in shop_rows[name] if r == route])
            p5 = float(np.percentile(best, 5))
            other = np.array([b for r, b in other_best[name] if r == route and b is not None])
            for kind, threshold in (("store", indexes[name].threshold(route, 0.95)),
                                    ("fallback", math.floor(p5 * 20) / 20)):
                lines.append(f"| {route} | {name} | {p5:.3f} / {float(np.median(best)):.3f} | "
                             f"{kind} {threshold:.3f} | {float(np.mean(best >= threshold)):.3f} "
                             f"| {float(np.mean(other < threshold)):.3f} (of {other.size}) |")
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("assistant", body, command="python benchmarks/bench_assistant.py "
                      f"--users {args.users} --days {args.days} --seed {args.seed}")


if __name__ == "__main__":
    main()
