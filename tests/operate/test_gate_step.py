"""The cycle's challenge step runs the gate: when a challenger is due, the decision is the gate's,
recorded in the registry with its evidence, and the champion moves only when it promotes."""

from __future__ import annotations

from churnguard.project import Project
from churnguard.registry import CHAMPION, OUTCOMES, alias_version, list_decisions

from operate.helpers import by_step, run


def _due_every_day(project: Project) -> Project:
    config = project.root / "churnguard.toml"
    config.write_text(config.read_text().replace("plan_every_days = 7",
                                                 "plan_every_days = 7\nretrain_every_days = 1"))
    return Project.load(project.root)


def test_a_due_challenger_goes_through_the_gate_and_its_decision_is_recorded(
        project: Project) -> None:
    project = _due_every_day(project)
    with project.open_store() as store:
        before = alias_version(store, CHAMPION)
    record = run(project, steps=["ingest", "score", "challenge"])
    step = by_step(record)["challenge"]
    assert record.status == "done", record.error
    assert step.status == "done" and step.figures["due"]
    decision = step.figures["decision"]
    assert decision["outcome"] in OUTCOMES and decision["trigger"] == "challenge"
    assert step.decision.startswith(decision["outcome"])
    with project.open_store() as store:
        recorded = list_decisions(store)
        after = alias_version(store, CHAMPION)
    assert [d.decision_id for d in recorded] == [decision["decision_id"]]
    assert decision["champion_version"] == before
    # The alias is where the decision left it: moved only by a promotion.
    assert after == decision["champion_after"]
    assert (after != before) == (decision["outcome"] == "promoted")


def test_no_challenger_when_none_is_due(project: Project) -> None:
    record = run(project, steps=["ingest", "score", "challenge"])
    step = by_step(record)["challenge"]
    assert step.status == "skipped" and "no challenger due" in step.decision
    with project.open_store() as store:
        assert list_decisions(store) == []
