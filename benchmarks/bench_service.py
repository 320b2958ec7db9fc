"""REST service load: GET /v1/users/{id}/risk on a store of simulated customers.

    python benchmarks/bench_service.py [--users 100000] [--days 365] [--seconds 30]
        [--rate 250] [--max-in-flight 16] [--concurrency 8] [--client raw|httpx] [--no-write]

Builds (once, cached under benchmarks/.data) a project with a simulated shop of ``--users``
customers, ingested and with a trained GBDT champion (the production recipe, ``train_model``).
Starts the service on a copy of it in its own process (uvicorn, ``python -m churnguard.service``,
clock = the data's, so the simulated past reads as now) and waits until everyone is scored and
explained. A second process then drives ``GET /v1/users/{id}/risk`` for random customers over
127.0.0.1 with an asyncio client (keep-alive; ``--client raw``, the default, writes HTTP/1.1 on
plain asyncio streams; ``--client httpx`` uses httpx.AsyncClient, whose ~1.5 ms of CPU a request
makes the client, not the server, the bottleneck on two shared cores), in three phases, each a
warm-up then ``--seconds``:

1. closed loop: ``--concurrency`` requests in flight, as fast as they are answered (the most it
   serves);
2. open loop: ``--rate`` requests a second on a fixed schedule (at most ``--max-in-flight`` in
   flight), latency counted from each request's scheduled time, so queueing is included (the
   target's figure);
3. fresh answers: one event posted for each of ``--fresh`` customers, each followed by their
   risk (the answer recomputed from the customer's own events), one at a time.

It also reports the CPU time per request of server and client. ``--breakdown N`` runs none of
that: it times each part of one fresh answer (``CustomerScratch.score``) for N random active
customers in this process, the whole call's CPU and wall time, and the feature SQL it no longer
runs, for comparison (section "realtime"). Writes the section "service" of
benchmarks/RESULTS.md. Target (issue 6): >= 200 requests/s with p99 <= 50 ms on 100,000
customers, 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from results import peak_rss_mib, run_step, write_section  # noqa: E402

DATA = HERE / ".data"
KEY = "bench-read-key-0123456789"
ADMIN_KEY = "bench-admin-key-0123456789"


def prepare(users: int, days: int, seed: int) -> dict[str, object]:
    """Simulate, ingest and train once; returns the project folder and the timings."""
    from churnguard.ingest import ingest_files
    from churnguard.project import init_project
    from churnguard.simulate import simulate
    from churnguard.training import train_model

    folder = DATA / f"service_{users}_{days}_{seed}"
    project_dir = folder / "project"
    done = folder / "ready.json"
    if done.exists():
        return json.loads(done.read_text())
    timings: dict[str, float] = {}
    started = time.perf_counter()
    sim = simulate(n_users=users, days=days, seed=seed, out_dir=folder / "sim")
    timings["simulate"] = time.perf_counter() - started
    if project_dir.exists():
        shutil.rmtree(project_dir)
    project, _ = init_project(project_dir)
    with project.open_store() as store:
        started = time.perf_counter()
        for kind in ("items", "users", "events", "campaigns"):
            ingest_files(store, kind=kind, files=[sim.paths[kind]])
        timings["ingest"] = time.perf_counter() - started
        started = time.perf_counter()
        trained = train_model(store, definition=project.config.churn, model="gbdt",
                              promote=True)
        timings["train"] = time.perf_counter() - started
    info = {"project": str(project_dir), "events": sim.n_events, "version": trained.version,
            "timings": timings, "peak_rss_mib": peak_rss_mib()}
    done.write_text(json.dumps(info))
    return info


def percentile(sorted_ms: list[float], q: float) -> float:
    if not sorted_ms:
        return float("nan")
    k = min(len(sorted_ms) - 1, max(0, int(round(q / 100 * len(sorted_ms) + 0.5)) - 1))
    return sorted_ms[k]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _HttpxGetter:
    """GETs through httpx.AsyncClient (keep-alive, at most ``connections`` open)."""

    def __init__(self, url: str, connections: int) -> None:
        import httpx

        limits = httpx.Limits(max_connections=connections,
                              max_keepalive_connections=connections)
        self.client = httpx.AsyncClient(base_url=url, headers={"X-API-Key": KEY},
                                        limits=limits, timeout=30.0)

    async def get(self, path: str) -> int:
        return (await self.client.get(path)).status_code

    async def close(self) -> None:
        await self.client.aclose()


class _RawGetter:
    """GETs over plain asyncio streams: HTTP/1.1 keep-alive, a pool of ``connections``.

    A few microseconds of client CPU a request instead of httpx's millisecond or two, so on a
    small shared machine the figures are the server's rather than the client's."""

    def __init__(self, url: str, connections: int) -> None:
        host_port = url.removeprefix("http://")
        self.host, port = host_port.split(":")
        self.port, self.connections = int(port), connections
        self.idle: asyncio.Queue = asyncio.Queue()
        self.opened = 0

    async def get(self, path: str) -> int:
        if self.idle.empty() and self.opened < self.connections:
            self.opened += 1
            self.idle.put_nowait(await asyncio.open_connection(self.host, self.port))
        reader, writer = await self.idle.get()
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nX-API-Key: {KEY}\r\n\r\n"
                     .encode())
        status = int((await reader.readline()).split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        self.idle.put_nowait((reader, writer))
        return status

    async def close(self) -> None:
        while not self.idle.empty():
            _, writer = self.idle.get_nowait()
            writer.close()


def _getter(kind: str, url: str, connections: int) -> _HttpxGetter | _RawGetter:
    return _HttpxGetter(url, connections) if kind == "httpx" else _RawGetter(url, connections)


async def _drive(url: str, ids: list[str], *, seconds: float, warmup: float,
                 concurrency: int, seed: int, server_pid: int,
                 client_kind: str) -> dict[str, object]:
    rng = random.Random(seed)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    client = _getter(client_kind, url, concurrency)
    try:
        start = time.perf_counter()
        measure_from = start + warmup
        stop = measure_from + seconds

        async def worker() -> None:
            while True:
                now = time.perf_counter()
                if now >= stop:
                    return
                user = ids[rng.randrange(len(ids))]
                sent = time.perf_counter()
                status = await client.get(f"/v1/users/{user}/risk")
                done = time.perf_counter()
                if sent >= measure_from:
                    latencies.append((done - sent) * 1000)
                    statuses[status] = statuses.get(status, 0) + 1

        async def meter() -> tuple[float, float, float, float]:
            await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
            server0, client0 = _cpu_seconds(server_pid), time.process_time()
            await asyncio.sleep(max(0.0, stop - time.perf_counter()))
            return server0, _cpu_seconds(server_pid), client0, time.process_time()

        *_, (server0, server1, client0, client1) = await asyncio.gather(
            *(worker() for _ in range(concurrency)), meter())
    finally:
        await client.close()
    latencies.sort()
    n = max(1, len(latencies))
    return {"requests": len(latencies), "seconds": seconds, "rps": len(latencies) / seconds,
            "p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
            "p99": percentile(latencies, 99), "max": latencies[-1] if latencies else None,
            "statuses": statuses, "server_cpu_ms": (server1 - server0) * 1000 / n,
            "client_cpu_ms": (client1 - client0) * 1000 / n,
            "load_average": os.getloadavg()[0]}


async def _drive_at_rate(url: str, ids: list[str], *, rate: float, seconds: float,
                         warmup: float, max_in_flight: int, seed: int,
                         client_kind: str) -> dict[str, object]:
    """Open loop: request i is due at start + i / rate whatever the answers' speed, so a slow
    answer cannot hold back the load; latency counts from the due time (queueing included)."""
    rng = random.Random(seed + 2)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    gate = asyncio.Semaphore(max_in_flight)
    client = _getter(client_kind, url, max_in_flight)
    try:
        start = time.perf_counter()
        measure_from = start + warmup
        total = int((warmup + seconds) * rate)

        async def one(due: float, user: str) -> None:
            async with gate:
                status = await client.get(f"/v1/users/{user}/risk")
            if due >= measure_from:
                latencies.append((time.perf_counter() - due) * 1000)
                statuses[status] = statuses.get(status, 0) + 1

        tasks = []
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(due, ids[rng.randrange(len(ids))])))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - measure_from
    finally:
        await client.close()
    latencies.sort()
    return {"requests": len(latencies), "rps": len(latencies) / elapsed, "offered": rate,
            "p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
            "p99": percentile(latencies, 99), "statuses": statuses,
            "load_average": os.getloadavg()[0]}


async def _fresh(url: str, ids: list[str], *, n: int, seed: int,
                 ts: str) -> dict[str, object]:
    """Post one event per customer, then time the first risk answer after it."""
    import httpx

    rng = random.Random(seed + 1)
    chosen = rng.sample(ids, min(n, len(ids)))
    latencies = []
    async with httpx.AsyncClient(base_url=url, timeout=60.0) as client:
        for user in chosen:
            event = {"user_id": user, "ts": ts, "type": "visit",
                     "event_id": f"bench-{seed}-{user}"}
            posted = await client.post("/v1/events", json={"events": [event]},
                                       headers={"X-API-Key": ADMIN_KEY})
            posted.raise_for_status()
            sent = time.perf_counter()
            response = await client.get(f"/v1/users/{user}/risk", headers={"X-API-Key": KEY})
            latencies.append((time.perf_counter() - sent) * 1000)
            response.raise_for_status()
    latencies.sort()
    return {"n": len(latencies), "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95), "p99": percentile(latencies, 99)}


def drive(args: argparse.Namespace) -> dict[str, object]:
    ids = Path(args.ids).read_text().split()
    load = asyncio.run(_drive(args.url, ids, seconds=args.seconds, warmup=args.warmup,
                              concurrency=args.concurrency, seed=args.seed,
                              server_pid=args.server_pid, client_kind=args.client))
    steady = asyncio.run(_drive_at_rate(args.url, ids, rate=args.rate, seconds=args.seconds,
                                        warmup=args.warmup, max_in_flight=args.max_in_flight,
                                        seed=args.seed, client_kind=args.client))
    fresh = asyncio.run(_fresh(args.url, ids, n=args.fresh, seed=args.seed, ts=args.ts))
    return {"load": load, "steady": steady, "fresh": fresh,
            "driver_peak_rss_mib": peak_rss_mib()}


def _parts(scratch, store, model, features, definition, as_of) -> dict[str, object]:  # noqa: ANN001
    """The parts of one CustomerScratch.score call, each timed (CPU ms of this process)."""
    from churnguard.explain.context import context_of_events
    from churnguard.features.frame import EventArrays

    state: dict[str, object] = {}

    def read(u: str) -> None:
        state["table"] = scratch._load_events(store, [u])

    def columns(u: str) -> None:
        state["ev"] = EventArrays.of(state["table"])

    def snapshot(u: str) -> None:
        state["snap"] = scratch.snapshot(state["ev"], [u], definition=definition, as_of=as_of,
                                         features=features)

    def context(u: str) -> None:
        state["context"] = context_of_events(state["ev"], list(state["snap"].index),
                                             topic_of=scratch._topic)

    return {
        "read the customer's events (DuckDB scan)": read,
        "events as NumPy columns": columns,
        "population, features, order histories (NumPy)": snapshot,
        "reason context (NumPy)": context,
        "model: p, TreeSHAP, values": "model",
        "reason sentences (en, zh)": "sentences",
        "_state": state,
    }


def _pop(user: str, as_of: dt.datetime) -> object:
    import pandas as pd

    return pd.DataFrame({"user_id": [user], "cutoff": [as_of]})


def breakdown(users: int, days: int, seed: int, n: int) -> dict[str, object]:
    """Where one fresh answer's time goes: each part of CustomerScratch.score timed alone for
    ``n`` random active customers (CPU ms of this process, so other work on the machine
    weighs less), the whole call (CPU and wall), and, for comparison, the feature SQL the
    answer no longer runs (build_features on the scratch copy, as before issue 18's change)."""
    from churnguard.features import build_features
    from churnguard.project import Project
    from churnguard.realtime import CustomerScratch, _sentences
    from churnguard.registry import CHAMPION, alias_version, get_model_version, load_model

    info = prepare(users, days, seed)
    project = Project.load(Path(info["project"]))
    definition = project.config.churn
    with project.open_store(read_only=True) as store:
        version = alias_version(store, CHAMPION)
        model = load_model(store, version)
        features = list(get_model_version(store, version).features)
        (last,) = store.con.execute("SELECT max(ts) FROM events").fetchall()[0]
        as_of = last + dt.timedelta(hours=1)
        scratch = CustomerScratch(store)
        parts = _parts(scratch, store, model, features, definition, as_of)
        state = parts.pop("_state")
        whole, whole_wall = "whole score() call", "whole score() call, wall"
        sql = "for comparison: the feature SQL on the copy (not run any more)"
        times: dict[str, list[float]] = {name: [] for name in [*parts, whole, whole_wall, sql]}
        rng = random.Random(seed + 5)
        done = 0
        while done < n:
            user = f"u{rng.randrange(users):07d}"
            for name, part in parts.items():
                c0 = time.process_time()
                if part == "model":
                    p, contributions, values = model.predict_explained(state["snap"])
                elif part == "sentences":
                    _sentences(state["snap"], contributions, values, state["context"],
                               ("en", "zh"))
                else:
                    part(user)
                times[name].append((time.process_time() - c0) * 1000)
                if name.startswith("population") and len(state["snap"]) == 0:
                    break  # lapsed: no model, no reasons; pick another customer
            if len(state["snap"]) == 0:
                for name in parts:
                    del times[name][done:]
                continue
            done += 1
            c0, w0 = time.process_time(), time.perf_counter()
            scratch.score(store, [user], definition=definition, tiers=project.config.scoring,
                          as_of=as_of, version=version, model=model, features=features)
            times[whole].append((time.process_time() - c0) * 1000)
            times[whole_wall].append((time.perf_counter() - w0) * 1000)
            c0 = time.process_time()
            build_features(scratch.store, _pop(user, as_of), definition=definition,
                           features=features, attributes=scratch._attributes)
            times[sql].append((time.process_time() - c0) * 1000)
        scratch.close()
    out = {name: {"p50": percentile(sorted(v), 50), "p90": percentile(sorted(v), 90),
                  "p99": percentile(sorted(v), 99)} for name, v in times.items()}
    return {"parts": out, "n": n, "load": os.getloadavg()[0], "events": info["events"]}


def _breakdown_text(result: dict[str, object], users: int) -> str:
    lines = [f"Where the first answer after a new event spends its time, {users:,} customers "
             f"({result['events']:,} events): each part of `CustomerScratch.score` timed alone "
             f"for {result['n']} random active customers, CPU ms of the process unless it says "
             f"wall (1-minute load average {result['load']:.1f} on {os.cpu_count()} cores: "
             "other work shares the machine, CPU time is less affected than wall time).", "",
             "| part | p50 ms | p90 ms | p99 ms |", "|---|---|---|---|"]
    for name, v in result["parts"].items():
        lines.append(f"| {name} | {v['p50']:.1f} | {v['p90']:.1f} | {v['p99']:.1f} |")
    lines += ["", "Only reading the customer's events depends on the store's size (a scan of the "
              "events table). The features, order histories and reason context are computed "
              "from those events in NumPy (`features/frame.py`, `explain/context.py`), equal "
              "to the SQL's column by column (tests/features/test_feature_frame.py)."]
    return "\n".join(lines)


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float) -> tuple[float, float]:
    """Seconds until the service answers with everyone's probability, and until everyone's
    reasons are in too."""
    import httpx

    started = time.perf_counter()
    scored = None
    while time.perf_counter() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"the service exited with {proc.returncode}")
        try:
            body = httpx.get(f"{url}/readyz", timeout=5).json()
            if scored is None and body.get("scores_as_of"):
                scored = time.perf_counter() - started
            if body.get("reasons_ready") == 1.0:
                return scored, time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the service was not ready within {timeout:.0f} s")


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-in-flight", type=int, default=16,
                        help="most requests in flight in the open-loop phase")
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw",
                        help="plain asyncio streams (default: ~0.15 ms of client CPU a request, "
                             "so the figures are the server's), or httpx.AsyncClient (~1.5 ms)")
    parser.add_argument("--rate", type=float, default=250.0,
                        help="requests a second of the open-loop phase")
    parser.add_argument("--fresh", type=int, default=200)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--breakdown", type=int, default=0, metavar="N",
                        help="instead of the load phases: time each part of one fresh answer "
                             "for N customers (section 'realtime' of RESULTS.md)")
    parser.add_argument("--step", choices=["prepare", "drive"], default=None,
                        help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--ids", help=argparse.SUPPRESS)
    parser.add_argument("--ts", help=argparse.SUPPRESS)
    parser.add_argument("--server-pid", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step == "prepare":
        print(json.dumps(prepare(args.users, args.days, args.seed)))
        return 0
    if args.step == "drive":
        print(json.dumps(drive(args)))
        return 0

    if args.breakdown:
        body = _breakdown_text(breakdown(args.users, args.days, args.seed, args.breakdown),
                               args.users)
        print(body)
        if not args.no_write:
            write_section("realtime", body, command=f"python benchmarks/bench_service.py "
                          f"--users {args.users} --breakdown {args.breakdown}")
        return 0
    here = str(Path(__file__).resolve())
    print(f"== preparing {args.users:,} customers over {args.days} days", flush=True)
    info = run_step([here, "--step", "prepare", "--users", str(args.users), "--days",
                     str(args.days), "--seed", str(args.seed)])
    # Serve a copy: the run stores events, and the next run must start from the same store.
    project = Path(info["project"]).parent / "run"
    shutil.rmtree(project, ignore_errors=True)
    shutil.copytree(info["project"], project)
    ids_file = project.parent / "ids.txt"
    ids_file.write_text("\n".join(f"u{i:07d}" for i in range(args.users)))

    # The fresh events fall on the simulated shop's last day (the simulation starts 2025-01-01).
    last_day = (dt.date(2025, 1, 1) + dt.timedelta(days=args.days - 1)).isoformat() + \
        "T23:59:59Z"
    url = f"http://127.0.0.1:{args.port}"
    env = {**os.environ, "CHURNGUARD_API_KEYS": f"{KEY}:read,{ADMIN_KEY}:admin",
           "CHURNGUARD_ENV": "production", "CHURNGUARD_CLOCK": "data",
           "CHURNGUARD_RATE_PER_SECOND": "1000000", "CHURNGUARD_RATE_BURST": "1000000",
           "CHURNGUARD_REFRESH_SECONDS": "0"}
    print("== starting the service", flush=True)
    server = subprocess.Popen([sys.executable, "-m", "churnguard.service", "--project",
                               str(project), "--port", str(args.port), "--log-level", "warning"],
                              env=env)
    try:
        scored_s, ready_s = _wait_ready(url, server, timeout=3600)
        print(f"   listening with everyone's probability after {scored_s:.0f} s, everyone's "
              f"reasons after {ready_s:.0f} s", flush=True)
        print(f"== driving for {args.warmup:.0f} + {args.seconds:.0f} s, "
              f"{args.concurrency} in flight", flush=True)
        result = run_step([here, "--step", "drive", "--url", url, "--ids", str(ids_file),
                           "--seconds", str(args.seconds), "--warmup", str(args.warmup),
                           "--concurrency", str(args.concurrency), "--rate", str(args.rate),
                           "--client", args.client, "--max-in-flight", str(args.max_in_flight),
                           "--fresh",
                           str(args.fresh), "--seed", str(args.seed), "--ts", last_day,
                           "--server-pid", str(server.pid)])
        server_rss = _rss_mib(server.pid)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
    load, steady, fresh = result["load"], result["steady"], result["fresh"]
    ok = steady["rps"] >= 200 and steady["p99"] <= 50
    lines = [
        f"`GET /v1/users/{{id}}/risk` for random customers of a simulated shop: "
        f"{args.users:,} customers, {info['events']:,} events over {args.days} days, GBDT "
        "champion (`train_model`). Server: one uvicorn process (`python -m churnguard.service`, "
        "clock = the data's); client: a second process on 127.0.0.1, asyncio + "
        f"{'httpx' if args.client == 'httpx' else 'plain asyncio streams'}, "
        f"keep-alive; each phase {args.warmup:.0f} s warm-up then {args.seconds:.0f} s measured. "
        "Both processes share the machine's cores. Open loop: requests are sent on a fixed "
        "schedule and latency counts from the scheduled time (queueing included); closed loop: "
        "a fixed number in flight, as fast as answered.",
        "",
        "| phase | requests | throughput req/s | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|---|---|",
        f"| risk, open loop at {args.rate:.0f} req/s | {steady['requests']:,} | "
        f"{steady['rps']:.0f} | {steady['p50']:.1f} | {steady['p95']:.1f} | "
        f"{steady['p99']:.1f} |",
        f"| risk, closed loop, {args.concurrency} in flight | {load['requests']:,} | "
        f"{load['rps']:.0f} | {load['p50']:.1f} | {load['p95']:.1f} | {load['p99']:.1f} |",
        f"| risk right after a new event for the customer | {fresh['n']} | (sequential) | "
        f"{fresh['p50']:.1f} | {fresh['p95']:.1f} | {fresh['p99']:.1f} |",
        "",
        f"CPU per request: server {load['server_cpu_ms']:.2f} ms, client "
        f"{load['client_cpu_ms']:.2f} ms (so "
        f"{1000 / (load['server_cpu_ms'] + load['client_cpu_ms']):.0f}"
        f" req/s would fill one core); 1-minute load average after the closed-loop and "
        f"open-loop phases {load['load_average']:.1f} and {steady['load_average']:.1f} on "
        f"{os.cpu_count()} cores (other work shares the machine).",
        "",
        f"Statuses (closed loop): "
        f"{', '.join(f'{k}: {v:,}' for k, v in sorted(load['statuses'].items()))}; (open loop): "
        f"{', '.join(f'{k}: {v:,}' for k, v in sorted(steady['statuses'].items()))}. "
        f"Start: listening with everyone's probability after {scored_s:.0f} s, everyone's "
        f"reasons (TreeSHAP, in the background) after {ready_s:.0f} s; service peak RSS "
        f"{server_rss:,.0f} MiB. Preparation (cached): simulate "
        f"{info['timings'].get('simulate', 0):.0f} s, ingest {info['timings'].get('ingest', 0):.0f}"
        f" s, train {info['timings'].get('train', 0):.0f} s.",
        "",
        f"Target (issue 6, 100,000 customers): >= 200 req/s with p99 <= 50 ms (open loop): "
        f"{'met' if ok else 'MISSED'}" + ("" if args.users == 100_000 else
                                          f" at {args.users:,} customers") + ".",
    ]
    body = "\n".join(lines)
    print()
    print(body)
    if not args.no_write:
        command = "python benchmarks/bench_service.py" + "".join(
            f" {flag} {value}" for flag, value, default in
            (("--users", args.users, 100_000), ("--days", args.days, 365),
             ("--seconds", args.seconds, 30.0), ("--concurrency", args.concurrency, 8),
             ("--rate", args.rate, 250.0), ("--client", args.client, "raw"))
            if value != default)
        write_section("service", body, command=command)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
