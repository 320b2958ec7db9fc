"""Behaviour model efficiency on the CPU: scoring throughput, one pretraining epoch, peak memory.

    python benchmarks/bench_behaviour_speed.py [--users 120000] [--days 365] [--seed 0]
        [--pretrain-customers 100000] [--baseline-customers 5000] [--fit-customers 4000]
        [--no-write]

The simulator's default scenario (``--users`` customers over ``--days`` days, cached under
benchmarks/.data), ingested into a store opened read-only. 120,000 simulated customers leave
about 109,000 with events before the scoring cutoff (not every simulated customer has one),
enough to pretrain on 100,000. Two cutoffs: the scoring cutoff (the newest simulated cutoff,
whose population has the longest histories) and the cutoff 90 days earlier, whose labels are
observable (the fits). Each step runs in a fresh process, so its peak
RSS is its own; every figure carries the 1-minute load average measured beside it, because the
2 cores are shared.

1. ``cache`` -- build the sequence caches (N = 256 newest events per customer, MiniLM text
   vectors) of both cutoffs from the store into a fresh folder; the scoring cutoff's build is
   timed (the scoring figures exclude it).
2. ``pretrain`` -- one epoch of CoLES pretraining of the GRU encoder (the chosen model's) over
   ``--pretrain-customers`` customers (95% trained on, 5% held out), timed as the whole
   ``pretrain_sequences`` call. Target: <= 10 minutes.
3. ``fit`` -- the two scored models: ``behaviour`` (the pretrained GRU fine-tuned: the chosen
   behaviour model) and ``behaviour_transformer`` (2 layers, d = 64, from scratch), one epoch
   each on a sample of the earlier cutoff's customers. Only so that a real fitted model scores;
   their quality is bench_behaviour.py's business.
4. ``score`` -- per model and path, ``predict_proba`` over the scoring cutoff's whole
   population (its own history lengths, capped at 256), cache built: the PyTorch path (length
   bucketing, inference mode, threads = cores) and the ONNX Runtime path (``runtime="onnx"``;
   the export is timed apart). The figure includes reading the rows' events from the cache,
   batching and calibration. Target: >= 2,000 customers per second for the chosen model.
5. ``baseline`` -- plain PyTorch on a random ``--baseline-customers`` sample of the same
   population: batches of 512 customers in their stored order (no bucketing) under
   ``torch.no_grad``, the embedding as gather-then-sum and the transformer through
   ``nn.TransformerEncoder`` (its nested-tensor fast path), against the optimised network on the
   same sample in the same process, the two taking turns twice; outputs are checked equal.

Writes the section "behaviour_speed" of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# Before anything loads torch: churnguard sets OMP_WAIT_POLICY=PASSIVE, which only takes effect
# if it is set before the OpenMP runtime loads. Without it, torch's threads spin on the shared
# cores and every path here (the plain-PyTorch baseline included) ran 4-14x slower.
import churnguard  # noqa: E402, F401
from results import DATA, HORIZON, START, cached_shop  # noqa: E402
from results import peak_rss_mib, run_step, write_section  # noqa: E402

MAX_LEN = 256
SCORING_TARGET = 2_000  # customers per second
PRETRAIN_TARGET = 600.0  # seconds for one epoch over 100,000 customers
MODELS = {"gru": "behaviour", "transformer": "behaviour_transformer"}
ROUNDS = 2  # turns each of the plain and the optimised path takes in the baseline step


def _load() -> float:
    return os.getloadavg()[0]


def _cutoffs(days: int) -> tuple[dt.datetime, dt.datetime]:
    """(scoring cutoff, training cutoff): the simulator's newest default cutoff and the one
    HORIZON days before it, whose labels the data covers."""
    scoring = dt.datetime.combine(START + dt.timedelta(days=90 + 30 * ((days - 90) // 30)),
                                  dt.time())
    return scoring, scoring - dt.timedelta(days=HORIZON)


def _store_path(users: int, days: int, seed: int) -> tuple[Path, dict]:
    db, _, seconds = cached_shop(DATA / f"behaviour_speed_{users}_{days}_{seed}", users=users,
                                 days=days, seed=seed)
    return db, seconds


def _population(store, cache, cutoff: dt.datetime, *, labels: bool):  # noqa: ANN001
    """The population at ``cutoff`` as a Snapshot the behaviour models read (their inputs are
    the rows' event sequences; no feature columns are needed)."""
    import pandas as pd

    from churnguard.config import ChurnDefinition
    from churnguard.labels import population_and_labels
    from churnguard.snapshots import Snapshot

    frame = population_and_labels(store, definition=ChurnDefinition(horizon_days=HORIZON),
                                  cutoffs=[cutoff])
    index = pd.MultiIndex.from_frame(frame[["user_id", "cutoff"]])
    y = pd.Series(frame["churned"].astype(float).to_numpy(), index=index) if labels else None
    return Snapshot(features=pd.DataFrame(index=index), labels=y, horizon_days=HORIZON,
                    meta={"sequences": cache})


# -- steps (each in its own process) ----------------------------------------------------------

def step_cache(args: argparse.Namespace) -> dict:
    from churnguard.sequences.cache import SequenceCache
    from churnguard.store import Store

    db, timings = _store_path(args.users, args.days, args.seed)
    scoring, training = _cutoffs(args.days)
    out: dict = {"data_seconds": timings}
    with Store.open(db, read_only=True) as store:
        cache = SequenceCache(store, max_len=MAX_LEN, root=args.cache_root)
        load = _load()
        started = time.perf_counter()
        cut = cache.at(scoring)
        out["build_seconds"] = time.perf_counter() - started
        out["load"] = [load, _load()]
        out["customers"] = len(cut.users)
        out["events"] = int(cut.sequences.offsets[-1])
        started = time.perf_counter()
        cache.at(training)
        out["training_cutoff_seconds"] = time.perf_counter() - started
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def step_pretrain(args: argparse.Namespace) -> dict:
    from churnguard.models.behaviour.encoders import EncoderConfig
    from churnguard.models.behaviour.pretrain import PretrainConfig, pretrain_sequences
    from churnguard.sequences.cache import SequenceCache
    from churnguard.store import Store

    db, _ = _store_path(args.users, args.days, args.seed)
    scoring, _ = _cutoffs(args.days)
    with Store.open(db, read_only=True) as store:
        seqs = SequenceCache(store, max_len=MAX_LEN, root=args.cache_root).at(scoring).sequences
    usable = int((seqs.lengths >= 2).sum())
    if usable < args.pretrain_customers:
        raise SystemExit(f"only {usable:,} customers have two or more events before "
                         f"{scoring:%Y-%m-%d}; simulate more --users")
    config = PretrainConfig(encoder=EncoderConfig(kind="gru"), epochs=1,
                            max_customers=args.pretrain_customers, seed=args.seed)
    load = _load()
    rss_before = peak_rss_mib()
    result = pretrain_sequences(seqs, config=config, out_dir=Path(args.work) / "pretrained",
                                progress=lambda m: print(m, file=sys.stderr, flush=True))
    return {"seconds": result.seconds, "epoch_seconds": result.history[0]["seconds"],
            "customers": result.n_customers, "train_loss": result.history[0]["train_loss"],
            "heldout_loss": result.history[0]["heldout_loss"], "load": [load, _load()],
            "threads": config.threads, "peak_rss_before_mib": rss_before,
            "peak_rss_mib": peak_rss_mib()}


def step_fit(args: argparse.Namespace) -> dict:
    import numpy as np

    from churnguard.models.behaviour.model import BehaviourChurnModel
    from churnguard.sequences.cache import SequenceCache
    from churnguard.store import Store

    db, _ = _store_path(args.users, args.days, args.seed)
    _, training = _cutoffs(args.days)
    out = {}
    with Store.open(db, read_only=True) as store:
        cache = SequenceCache(store, max_len=MAX_LEN, root=args.cache_root)
        train = _population(store, cache, training, labels=True)
        keep = np.random.default_rng(args.seed).random(len(train)) < min(
            1.0, args.fit_customers / len(train))
        train = train.subset(keep)
        encoder_file = Path(args.work) / "pretrained" / "encoder.pt"
        for kind, name in MODELS.items():
            model = BehaviourChurnModel(
                encoder=kind, n_layers=2 if kind == "transformer" else 1, epochs=1,
                pretrain=str(encoder_file) if name == "behaviour" else "none", seed=args.seed)
            started = time.perf_counter()
            model.fit(train)
            assert model.name == name, model.name
            model.save(Path(args.work) / f"{kind}.pkl")
            out[kind] = {"name": name, "seconds": time.perf_counter() - started,
                         "rows": len(train)}
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def step_score(args: argparse.Namespace, kind: str, runtime: str) -> dict:
    import numpy as np

    from churnguard.models.behaviour.inference import export_onnx
    from churnguard.models.behaviour.model import BehaviourChurnModel
    from churnguard.sequences.cache import SequenceCache, sequences_of
    from churnguard.store import Store

    db, _ = _store_path(args.users, args.days, args.seed)
    scoring, _ = _cutoffs(args.days)
    model = BehaviourChurnModel.load(Path(args.work) / f"{kind}.pkl")
    model.runtime = runtime  # a scoring choice: the network is the same
    out: dict = {"name": model.name, "runtime": runtime}
    with Store.open(db, read_only=True) as store:
        cache = SequenceCache(store, max_len=MAX_LEN, root=args.cache_root)
        population = _population(store, cache, scoring, labels=False)
        if runtime == "onnx":
            started = time.perf_counter()
            graph = export_onnx(model.network_)
            out["export_seconds"] = time.perf_counter() - started
            out["onnx_mib"] = len(graph) / 2**20
        # Warm-up on a few customers: the ONNX export and session, the cache's memory maps.
        model.predict_proba(population.subset(np.arange(len(population)) < 1000))
        started = time.perf_counter()
        seqs = sequences_of(population, max_len=MAX_LEN)
        out["read_seconds"] = time.perf_counter() - started
        lengths = np.minimum(seqs.lengths, MAX_LEN)
        del seqs
        load = _load()
        cpu, started = time.process_time(), time.perf_counter()
        p = model.predict_proba(population)
        out["seconds"] = time.perf_counter() - started
        out["cpu_seconds"] = time.process_time() - cpu
        out["load"] = [load, _load()]
    out.update(customers=len(p), per_second=len(p) / out["seconds"],
               cpu_ms_per_1000=1000 * out["cpu_seconds"] / len(p) * 1000,
               mean_length=float(lengths.mean()), share_capped=float((lengths == MAX_LEN).mean()),
               mean_p=float(p.mean()), peak_rss_mib=peak_rss_mib())
    return out


def _plain_forward(network, batch):  # noqa: ANN001
    """The network as plain PyTorch computes it: the embedding as gather-then-sum, the GRU,
    and the transformer through ``nn.TransformerEncoder`` (its nested-tensor fast path)."""
    import copy

    import torch
    from torch import nn

    from churnguard.models.behaviour.encoders import context_features

    encoder = network.encoder
    emb = encoder.embedding
    cat, num = batch.payload["cat"], batch.payload["num"]
    x = emb.fields(cat + emb.offsets).sum(dim=-2)
    x = x + emb.time_out(torch.cat([emb.time(num[..., :2] * 0.25), num[..., 2:]], dim=-1))
    if emb.text is not None:
        x = x + emb.text(batch.payload["text"])
    x = emb.norm(x)
    rows = torch.arange(len(batch))
    last = (batch.lengths - 1).clamp(min=0)
    if encoder.config.kind == "gru":
        states, _ = encoder.rnn(x)
        pooled = states[rows, last]
    else:
        if not hasattr(encoder, "_plain_layers"):
            plain = nn.TransformerEncoder(copy.deepcopy(encoder.layers.layers[0]),
                                          len(encoder.layers.layers), enable_nested_tensor=True)
            plain.load_state_dict(encoder.layers.state_dict())
            encoder._plain_layers = plain.eval()
        mask = batch.mask | ((batch.lengths == 0)[:, None]
                             & (torch.arange(batch.mask.shape[1]) == 0))
        states = encoder._plain_layers(x, src_key_padding_mask=~mask)
        if states.is_nested:
            states = states.to_padded_tensor(0.0, x.shape)
        states = states * mask[..., None]
        mean = states.sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp(min=1)
        pooled = encoder.pool(torch.cat([states[rows, last], mean], dim=-1))
    z = torch.where((batch.lengths > 0)[:, None], pooled, encoder.empty.expand_as(pooled))
    return network.head(torch.cat([z, context_features(batch)], dim=-1)).squeeze(-1)


def step_baseline(args: argparse.Namespace, kind: str) -> dict:
    import warnings

    import numpy as np
    import torch

    from churnguard.models.behaviour.inference import embed
    from churnguard.models.behaviour.model import BehaviourChurnModel
    from churnguard.sequences.batch import pad
    from churnguard.sequences.cache import SequenceCache, sequences_of
    from churnguard.store import Store

    warnings.filterwarnings("ignore", message="The PyTorch API of nested tensors")
    db, _ = _store_path(args.users, args.days, args.seed)
    scoring, _ = _cutoffs(args.days)
    model = BehaviourChurnModel.load(Path(args.work) / f"{kind}.pkl")
    network = model.network_.eval()
    with Store.open(db, read_only=True) as store:
        cache = SequenceCache(store, max_len=MAX_LEN, root=args.cache_root)
        population = _population(store, cache, scoring, labels=False)
        rng = np.random.default_rng(args.seed)
        sample = np.sort(rng.choice(len(population), min(args.baseline_customers,
                                                         len(population)), replace=False))
        seqs = sequences_of(population.subset(np.isin(np.arange(len(population)), sample)),
                            max_len=MAX_LEN)
    torch.set_num_threads(os.cpu_count() or 1)

    def plain() -> np.ndarray:
        outs = []
        with torch.no_grad():
            for start in range(0, len(seqs), 512):
                rows = np.arange(start, min(start + 512, len(seqs)))
                outs.append(_plain_forward(network, pad(seqs, rows, max_len=MAX_LEN)).numpy())
        return np.concatenate(outs)

    def optimised() -> np.ndarray:
        return embed(network.encoder, seqs, max_len=MAX_LEN, head=network)

    head = seqs.take(np.arange(min(300, len(seqs))))  # warm-up of both paths
    with torch.no_grad():
        _plain_forward(network, pad(head, np.arange(len(head)), max_len=MAX_LEN))
    embed(network.encoder, head, max_len=MAX_LEN, head=network)
    # The two paths take turns, twice, so that a change of load between them hits both.
    totals = {label: {"seconds": 0.0, "cpu": 0.0, "loads": []} for label in ("plain",
                                                                           "optimised")}
    values = {}
    for _ in range(ROUNDS):
        for label, run in (("plain", plain), ("optimised", optimised)):
            load = _load()
            cpu, started = time.process_time(), time.perf_counter()
            values[label] = run()
            totals[label]["seconds"] += time.perf_counter() - started
            totals[label]["cpu"] += time.process_time() - cpu
            totals[label]["loads"] += [load, _load()]
    out: dict = {"customers": len(seqs), "rounds": ROUNDS}
    for label, total in totals.items():
        out[label] = {"seconds": total["seconds"],
                      "per_second": ROUNDS * len(seqs) / total["seconds"],
                      "cpu_ms_per_1000": 1e6 * total["cpu"] / (ROUNDS * len(seqs)),
                      "load": [min(total["loads"]), max(total["loads"])]}
    out["max_abs_diff"] = float(np.abs(values["plain"] - values["optimised"]).max())
    out["ratio"] = out["optimised"]["per_second"] / out["plain"]["per_second"]
    out["cpu_ratio"] = out["plain"]["cpu_ms_per_1000"] / out["optimised"]["cpu_ms_per_1000"]
    out["mean_length"] = float(np.minimum(seqs.lengths, MAX_LEN).mean())
    out["peak_rss_mib"] = peak_rss_mib()
    return out


# -- driver -----------------------------------------------------------------------------------

def _loads(entry: dict) -> str:
    return f"load {entry['load'][0]:.1f}→{entry['load'][1]:.1f}"


def _report(args: argparse.Namespace, runs: dict, wall: float) -> str:
    scoring, training = _cutoffs(args.days)
    cache, pre, fit = runs["cache"], runs["pretrain"], runs["fit"]
    score = {(k, r): runs[f"score:{k}:{r}"] for k in MODELS for r in ("torch", "onnx")}
    base = {k: runs[f"baseline:{k}"] for k in MODELS}
    first = score[("gru", "torch")]
    lines = [
        f"Default scenario, {args.users:,} simulated customers over {args.days} days (seed "
        f"{args.seed}); {os.cpu_count()} cores shared with other work, so each figure carries "
        "the 1-minute load average at its start→end. Scoring cutoff "
        f"{scoring:%Y-%m-%d}: {first['customers']:,} customers in the population, mean history "
        f"length {first['mean_length']:.1f} events (capped at N = {MAX_LEN}; "
        f"{first['share_capped']:.0%} at the cap).",
        "",
        f"Sequence cache of the scoring cutoff ({cache['customers']:,} customers, "
        f"{cache['events']:,} events), built from the store: {cache['build_seconds']:.1f} s "
        f"({_loads(cache)}); peak RSS {cache['peak_rss_mib']:,.0f} MiB. Excluded from the "
        "scoring figures.",
        "",
        "| model | path | customers/s | CPU ms per 1,000 | of which reading the cache s | "
        "peak RSS MiB | load |",
        "|---|---|---|---|---|---|---|",
    ]
    for (kind, runtime), s in score.items():
        extra = (f" (export {s['export_seconds']:.1f} s, {s['onnx_mib']:.2f} MiB)"
                 if runtime == "onnx" else "")
        path = "PyTorch" if runtime == "torch" else "ONNX Runtime"
        lines.append(f"| {s['name']} ({kind}) | {path}{extra} | {s['per_second']:,.0f} | "
                     f"{s['cpu_ms_per_1000']:,.0f} | "
                     f"{s['read_seconds']:.1f} | {s['peak_rss_mib']:,.0f} | "
                     f"{_loads(s)} |")
    lines += ["", f"Against plain PyTorch (a random {base['gru']['customers']:,}-customer sample "
              "of the same population, the network alone, same process, the two paths taking "
              f"turns {ROUNDS} times; load: lowest and highest seen):", "",
              "| model | plain PyTorch customers/s | optimised customers/s | ratio | CPU ms per "
              "1,000: plain, optimised | CPU ratio | max abs difference | load |",
              "|---|---|---|---|---|---|---|---|"]
    for kind, b in base.items():
        lines.append(f"| {MODELS[kind]} ({kind}) | {b['plain']['per_second']:,.0f} | "
                     f"{b['optimised']['per_second']:,.0f} | {b['ratio']:.1f}x | "
                     f"{b['plain']['cpu_ms_per_1000']:,.0f}, "
                     f"{b['optimised']['cpu_ms_per_1000']:,.0f} | {b['cpu_ratio']:.1f}x | "
                     f"{b['max_abs_diff']:.1e} | "
                     f"{min(b['plain']['load'][0], b['optimised']['load'][0]):.1f}-"
                     f"{max(b['plain']['load'][1], b['optimised']['load'][1]):.1f} |")
    best = max(score[("gru", r)]["per_second"] for r in ("torch", "onnx"))
    best_tr = max(score[("transformer", r)]["per_second"] for r in ("torch", "onnx"))
    per_100k = pre["seconds"] * 100_000 / pre["customers"]
    scoring_met = best >= SCORING_TARGET
    largest = max(r["peak_rss_mib"] for r in runs.values())
    pretrain_met = pre["customers"] >= 100_000 and pre["seconds"] <= PRETRAIN_TARGET
    lines += [
        "",
        f"Pretraining (CoLES, GRU, default settings, threads = cores): one epoch over "
        f"{pre['customers']:,} customers (5% held out) in {pre['seconds']:.0f} s, the epoch "
        f"itself {pre['epoch_seconds']:.0f} s ({_loads(pre)}); peak RSS "
        f"{pre['peak_rss_mib']:,.0f} MiB.",
        f"Fits (one epoch on {fit['gru']['rows']:,} customers at {training:%Y-%m-%d}, only to "
        f"have fitted models): behaviour {fit['gru']['seconds']:.0f} s, behaviour_transformer "
        f"{fit['transformer']['seconds']:.0f} s.",
        "",
        "Targets (issue 4):",
        f"- scoring >= {SCORING_TARGET:,} customers/s with the chosen behaviour model "
        f"(behaviour, GRU): {best:,.0f} — {'met' if scoring_met else 'MISSED'}; transformer "
        f"{best_tr:,.0f} ({'also above' if best_tr >= SCORING_TARGET else 'below'} "
        f"{SCORING_TARGET:,}).",
        f"- one pretraining epoch over 100,000 customers <= 10 min: {pre['seconds']:.0f} s"
        + (f" ({per_100k:.0f} s scaled to 100,000)" if pre["customers"] != 100_000 else "")
        + f" — {'met' if pretrain_met else 'MISSED'}.",
        f"- peak memory: reported per step above (largest {largest:,.0f} MiB).",
        "",
        f"Whole benchmark {wall / 60:.1f} min (simulation and ingest "
        f"{sum(cache['data_seconds'].values()):.0f} s, 0 when cached).",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=120_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pretrain-customers", type=int, default=100_000)
    parser.add_argument("--baseline-customers", type=int, default=5_000)
    parser.add_argument("--fit-customers", type=int, default=4_000)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--step", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cache-root", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--work", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step is not None:
        name, *rest = args.step.split(":")
        steps = {"cache": step_cache, "pretrain": step_pretrain, "fit": step_fit,
                 "score": step_score, "baseline": step_baseline}
        print(json.dumps(steps[name](args, *rest), default=str))
        return 0

    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="bench_behaviour_speed-"))
    common = ["--users", str(args.users), "--days", str(args.days), "--seed", str(args.seed),
              "--pretrain-customers", str(args.pretrain_customers),
              "--baseline-customers", str(args.baseline_customers),
              "--fit-customers", str(args.fit_customers),
              "--cache-root", str(work / "sequences"), "--work", str(work)]
    order = (["cache", "pretrain", "fit"]
             + [f"score:{k}:{r}" for k in MODELS for r in ("torch", "onnx")]
             + [f"baseline:{k}" for k in MODELS])
    runs: dict[str, dict] = {}
    try:
        for step in order:
            t0 = time.perf_counter()
            print(f"== {step}", flush=True)
            runs[step] = run_step([str(Path(__file__).resolve()), *common, "--step", step])
            summary = {k: v for k, v in runs[step].items()
                       if k in ("per_second", "seconds", "build_seconds", "ratio", "load")}
            print(f"   {summary} ({time.perf_counter() - t0:.0f} s)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    folder = DATA / f"behaviour_speed_{args.users}_{args.days}_{args.seed}"
    (folder / "last_run.json").write_text(json.dumps(runs, indent=1, default=str))
    body = _report(args, runs, time.perf_counter() - started)
    print()
    print(body)
    if not args.no_write:
        command = "python benchmarks/bench_behaviour_speed.py" + "".join(
            f" {flag} {value}" for flag, value, default in
            (("--users", args.users, 120_000), ("--days", args.days, 365),
             ("--seed", args.seed, 0), ("--pretrain-customers", args.pretrain_customers, 100_000),
             ("--baseline-customers", args.baseline_customers, 5_000),
             ("--fit-customers", args.fit_customers, 4_000)) if value != default)
        write_section("behaviour_speed", body, command=command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
