"""Case templates and task checklists: applying a template, task state and assignee, the case's
history, and the time to done per task (for one case and summed up per template and task)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from norrvakt.alerts.case_tasks import TaskService
from norrvakt.alerts.case_templates import TemplateError, load_templates
from norrvakt.alerts.cases import CaseService
from norrvakt.alerts.errors import InvalidInput, InvalidTransition, NotFound
from norrvakt.alerts.model import AlertInput
from norrvakt.alerts.service import AlertService
from tests.alerts.conftest import Clock

BUILTIN = {"account_compromise", "malware_host", "improper_record_access", "lost_device", "ransomware"}


def test_the_five_builtin_templates_read_with_tasks_in_both_languages() -> None:
    templates = load_templates()
    assert set(templates) == BUILTIN
    for t in templates.values():
        assert t.title_sv and t.title_en and len(t.tasks) >= 5
        assert len({task.key for task in t.tasks}) == len(t.tasks)
        assert all(task.title_sv and task.title_en and task.title_sv != task.title_en for task in t.tasks)
    assert templates["account_compromise"].suits(["attack.credential-access", "attack.t1110.003"])
    assert templates["account_compromise"].suits(["attack.credential_access"])  # older Sigma spelling
    assert not templates["ransomware"].suits(["attack.t1110.003"])


def test_a_bad_template_is_refused_with_file_task_and_reason(tmp_path: Path) -> None:
    (tmp_path / "bad.yml").write_text(
        "id: Bad Id\ntitle: {sv: X}\ntasks:\n"
        "  - key: a\n    title: {sv: a, en: b}\n  - key: a\n    title: x\n"
    )
    (tmp_path / "mine.yml").write_text(
        "id: lost_device\ntitle: {sv: Borttappad, en: Lost}\ntasks:\n"
        "  - key: call\n    title: {sv: Ring, en: Call}\n"
    )
    with pytest.raises(TemplateError) as info:
        load_templates([tmp_path])
    text = str(info.value)
    assert "bad.yml: id 'Bad Id'" in text and "bad.yml: title: no en text" in text
    assert "bad.yml: tasks[1]: key 'a' twice" in text
    (tmp_path / "bad.yml").unlink()
    replaced = load_templates([tmp_path])  # a template of the folder replaces the built-in one
    assert [t.key for t in replaced["lost_device"].tasks] == ["call"] and len(replaced) == 5


@pytest.fixture
def tasks(engine: sa.Engine, clock: Clock) -> TaskService:
    return TaskService(engine, load_templates(), clock=clock)


_hosts = iter(range(1, 10_000))


def _case(cases: CaseService, service: AlertService, make_input: Callable[..., AlertInput]) -> int:
    """A new case of Luleå's: an alert on entities no other case has."""
    n = next(_hosts)
    entities = {"user.name": f"user{n}", "host.name": f"lulea-pc{n}", "source.ip": f"203.0.113.{n % 250}"}
    (alert,) = service.ingest([make_input(entities=entities)])
    assert alert.case_id is not None
    return alert.case_id


def test_applying_a_template_gives_its_tasks_in_order_and_history(
    tasks: TaskService, cases: CaseService, service: AlertService, make_input: Callable[..., AlertInput]
) -> None:
    case_id = _case(cases, service, make_input)
    got, changes = tasks.apply_template(case_id, "account_compromise", "anna", ["lulea"])
    template = tasks.templates["account_compromise"]
    assert [t["key"] for t in got["tasks"]] == [t.key for t in template.tasks]
    assert all(t["state"] == "open" and t["assignee"] is None for t in got["tasks"])
    assert got["tasks"][1]["title"]["sv"].startswith("Spärra kontot")
    assert got["templates"] == ["account_compromise"]
    assert changes[0].action == "template" and changes[0].new == "account_compromise"
    assert len(changes) == 1 + len(template.tasks)
    history = cases.history(case_id, ["lulea"])
    assert [c.action for c in history].count("task-added") == len(template.tasks)
    with pytest.raises(InvalidTransition):
        tasks.apply_template(case_id, "account_compromise", "anna", ["lulea"])
    with pytest.raises(InvalidInput, match="no case template 'phishing'"):
        tasks.apply_template(case_id, "phishing", "anna", ["lulea"])
    both, _ = tasks.apply_template(case_id, "lost_device", "anna", ["lulea"])  # a second type: after
    assert both["tasks"][-1]["key"] == "close_out" and both["tasks"][-1]["template"] == "lost_device"


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)  # the SQL is the same as above
def test_state_and_assignee_changes_are_history_and_time_to_done_is_measured(
    tasks: TaskService,
    cases: CaseService,
    service: AlertService,
    make_input: Callable[..., AlertInput],
    clock: Clock,
) -> None:
    case_id = _case(cases, service, make_input)
    got, _ = tasks.apply_template(case_id, "lost_device", "anna", ["lulea"])
    first, second, third = (t["id"] for t in got["tasks"][:3])
    clock.advance(60)
    task, changes = tasks.change(case_id, first, "anna", ["lulea"], state="in_progress", assignee="bo")
    assert task["state"] == "in_progress" and task["assignee"] == "bo" and task["started_at"] == clock.now
    assert [(c.action, c.field, c.old, c.new) for c in changes] == [
        ("task-state", f"task:{first}", "open", "in_progress"),
        ("task-assign", f"task:{first}", "", "bo"),
    ]
    clock.advance(240)
    task, _ = tasks.change(case_id, first, "bo", ["lulea"], state="done")
    assert task["time_to_done_s"] == 300.0
    tasks.change(case_id, second, "bo", ["lulea"], state="not_applicable")
    clock.advance(600)
    tasks.change(case_id, third, "bo", ["lulea"], state="done")
    tasks.change(case_id, third, "bo", ["lulea"], state="open")  # reopened: not done any more
    summary = tasks.tasks(case_id, ["lulea"])["summary"]
    assert summary["done"] == 1 and summary["not_applicable"] == 1 and summary["mean_time_to_done_s"] == 300.0
    _, nothing = tasks.change(case_id, first, "bo", ["lulea"], state="done")
    assert nothing == []  # the same state again changes nothing
    with pytest.raises(InvalidInput, match="state 'finished'"):
        tasks.change(case_id, first, "bo", ["lulea"], state="finished")
    with pytest.raises(InvalidInput, match="nothing to change"):
        tasks.change(case_id, first, "bo", ["lulea"])
    actions = [c.action for c in cases.history(case_id, ["lulea"])]
    assert actions.count("task-state") == 5 and actions.count("task-assign") == 1


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)  # the SQL is the same as above
def test_time_to_done_per_template_and_task_over_cases(
    tasks: TaskService,
    cases: CaseService,
    service: AlertService,
    make_input: Callable[..., AlertInput],
    clock: Clock,
) -> None:
    durations = [120, 360]
    for seconds in durations:
        case_id = _case(cases, service, make_input)
        got, _ = tasks.apply_template(case_id, "malware_host", "anna", ["lulea"])
        clock.advance(seconds)
        tasks.change(case_id, got["tasks"][0]["id"], "anna", ["lulea"], state="done")
    adhoc, _ = tasks.add(case_id, "Ring IT-chefen", "anna", ["lulea"], assignee="bo")
    assert adhoc["template"] == "" and adhoc["assignee"] == "bo"
    rows = tasks.time_to_done(["lulea"], 0, clock.now)
    isolate = next(r for r in rows if r["template"] == "malware_host" and r["key"] == "isolate_host")
    assert isolate["tasks"] == 2 and isolate["done"] == 2 and isolate["position"] == 0
    assert isolate["mttr_s"] == 240.0 and isolate["median_s"] == 240.0 and isolate["tenants"] == ["lulea"]
    reimage = next(r for r in rows if r["key"] == "reimage")
    assert reimage["done"] == 0 and reimage["open"] == 2 and reimage["mttr_s"] is None
    assert rows[-1]["template"] == "" and rows[-1]["tasks"] == 1  # ad hoc tasks last, together
    assert tasks.time_to_done(["boden"], 0, clock.now) == []


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)  # the SQL is the same as above
def test_other_tenants_cases_and_tasks_are_not_found(
    tasks: TaskService, cases: CaseService, service: AlertService, make_input: Callable[..., AlertInput]
) -> None:
    case_id = _case(cases, service, make_input)
    got, _ = tasks.apply_template(case_id, "ransomware", "anna", ["lulea"])
    task_id = got["tasks"][0]["id"]
    for call in (
        lambda: tasks.tasks(case_id, ["boden"]),
        lambda: tasks.apply_template(case_id, "lost_device", "x", ["boden"]),
        lambda: tasks.add(case_id, "x", "x", ["boden"]),
        lambda: tasks.change(case_id, task_id, "x", ["boden"], state="done"),
        lambda: tasks.change(case_id + 1000, task_id, "x", ["lulea"], state="done"),
    ):
        with pytest.raises(NotFound):
            call()
    other = _case(cases, service, make_input)
    with pytest.raises(NotFound):  # a task of another case, through this one
        tasks.change(other, task_id, "anna", ["lulea"], state="done")


def test_alerts_per_tenant_for_the_pivot(
    engine: sa.Engine, service: AlertService, make_input: Callable[..., AlertInput]
) -> None:
    from norrvakt.state.case_tasks import alerts_per_tenant

    service.ingest(
        [
            make_input(tenant="boden", entities={"user.name": "Anna.Berg", "host.name": "boden-pc1"}),
            make_input(tenant="boden", rule_id="other", entities={"user.target.name": "anna.berg"}),
            make_input(tenant="pitea", entities={"destination.ip": "185.220.101.7"}),
        ]
    )
    with engine.connect() as conn:
        users = alerts_per_tenant(
            conn, ("user.name", "user.target.name"), "ANNA.BERG", ["boden", "pitea"], 0, fold_case=True
        )
        ips = alerts_per_tenant(
            conn, ("source.ip", "destination.ip"), "185.220.101.7", ["boden", "pitea"], 0, fold_case=False
        )
        none = alerts_per_tenant(conn, ("destination.ip",), "185.220.101.7", ["boden"], 0, fold_case=False)
    assert [(r["tenant"], r["alerts"]) for r in users] == [("boden", 2)]
    assert [(r["tenant"], r["alerts"]) for r in ips] == [("pitea", 1)] and none == []
