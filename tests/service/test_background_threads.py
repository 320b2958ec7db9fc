"""The service's background rescoring leaves a core to the requests: its model calls run on
every core but one (OpenMP's thread count is per thread), while a request's thread keeps them
all. On two cores, TreeSHAP on both made the event loop wait hundreds of milliseconds at the
tail (benchmarks/RESULTS.md "cycle_serve")."""

from __future__ import annotations

import threading

import lightgbm  # noqa: F401 - loads the OpenMP runtime whose thread counts are checked
from threadpoolctl import threadpool_info

from churnguard.service.risk import background_threads

from service.helpers import ClientFactory


def _openmp_threads() -> set[int]:
    return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "openmp"}


def test_the_background_scoring_leaves_one_core_to_the_requests(
        make_client: ClientFactory) -> None:
    risk = make_client().app.state.service.risk
    before = _openmp_threads()
    assert before, "no OpenMP runtime is loaded: nothing to check"
    seen: list[set[int]] = []
    risk._background = lambda refresh_seconds, job: seen.append(_openmp_threads())
    thread = threading.Thread(target=risk._loop, args=(0.0, None))
    thread.start()
    thread.join(30)
    assert seen == [{background_threads()}]
    assert _openmp_threads() == before  # this (request) thread still has every core
