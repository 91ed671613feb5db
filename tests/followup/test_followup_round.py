"""A follow-up round on a month of real social-services access logs: plan → sample →
review → case → sign-off → verify, with the rules on who may do what."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest
import sqlalchemy as sa

from norrvakt.followup.errors import Invalid, Locked, NotFound, NotReviewer
from norrvakt.followup.lookup import hash_plain_rows, write_hashed_csv
from norrvakt.followup.service import FollowupService, PlanInput
from norrvakt.reports import followup as report
from tests.followup.conftest import ALL, SOC, Access, at, officer, parsed

KARIN = officer("karin.granskare", "lulea")
DATASET = "socialtjanst.record_access"


def _plan(svc: FollowupService, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "tenant": "lulea",
        "dataset": DATASET,
        "reviewer": "karin.granskare",
        "random_sample": 15,
        "targeted_per_reason": 5,
    }
    values.update(changes)
    return svc.create_plan(KARIN, ["lulea"], PlanInput(**values))


def _upload_lookup(svc: FollowupService) -> None:
    staff = write_hashed_csv(
        hash_plain_rows(
            "lulea",
            [
                {"id": "u-2", "surname": "Lindqvist", "address": "Storgatan 1"},
                {"id": "u-3", "surname": "Holmgren", "address": ""},
            ],
        )
    )
    people = write_hashed_csv(
        hash_plain_rows(
            "lulea",
            [
                {"id": "s-lind", "surname": "lindqvist ", "address": "Ö 2"},
                {"id": "s-prot", "surname": "Okänd", "address": ""},
            ],
        )
    )
    assert svc.upload_lookup("lulea", "staff", staff, KARIN, ["lulea"]) == 2
    assert svc.upload_lookup("lulea", "subject", people, KARIN, ["lulea"]) == 2


def test_plan_is_validated_and_tenant_scoped(followup: FollowupService) -> None:
    with pytest.raises(Invalid) as bad:
        _plan(followup, dataset="nope", reviewer="pia.granskare", frequency="daily")
    text = str(bad.value)
    assert "dataset 'nope'" in text and "frequency 'daily'" in text and "reviewer 'pia.granskare'" in text
    with pytest.raises(NotFound):
        followup.create_plan(
            KARIN, ["lulea"], PlanInput(tenant="pitea", dataset=DATASET, reviewer="pia.granskare")
        )
    auditor = officer("revisor", "lulea", role="auditor")
    with pytest.raises(NotReviewer):
        followup.create_plan(
            auditor, ["lulea"], PlanInput(tenant="lulea", dataset=DATASET, reviewer="karin.granskare")
        )
    plan = _plan(followup)
    assert followup.plans(["pitea"]) == []
    with pytest.raises(NotFound):
        followup.plan(plan["id"], ["pitea"])


def test_sample_has_random_and_every_targeted_reason(followup: FollowupService) -> None:
    _upload_lookup(followup)
    plan = _plan(followup)
    round_ = followup.draw_round(plan["id"], "2026-11", KARIN, ["lulea"])
    items = round_["items"]
    # November: 21 workdays × 15 + 55 extra + 4 special accesses, all in lulea.
    assert round_["population"] == 21 * 15 + 55 + 4
    by_reason = {r: [i for i in items if r in i["reasons"]] for r in round_["reason_totals"]}
    assert len(by_reason["random"]) == 15
    (prot,) = by_reason["protected_not_assigned"]
    assert (prot["user_name"], prot["subject"], prot["action"]) == ("u-3", "s-prot", "read")
    (search,) = by_reason["protected_search"]
    assert (search["user_name"], search["action"]) == ("u-4", "search")
    (no_case,) = by_reason["no_case_relation"]
    assert (no_case["user_name"], no_case["subject"]) == ("u-5", "s-007")
    (late,) = by_reason["after_hours"]
    assert late["user_name"] == "u-6"
    assert len(by_reason["volume_outlier"]) == 5 and {
        i["user_name"] for i in by_reason["volume_outlier"]
    } == {"u-1"}
    assert round_["reason_totals"]["volume_outlier"] == 60  # the whole spike day, 5 sampled
    assert by_reason["same_surname"] and {
        (i["user_name"], i["subject"]) for i in by_reason["same_surname"]
    } == {("u-2", "s-lind")}
    assert round_["reason_totals"]["same_address"] == 0
    assert all(i["tenant"] == "lulea" for i in items)
    # The same period cannot be drawn again (no re-rolling); the sample is reproducible anyway.
    with pytest.raises(Locked, match="drawn as round"):
        followup.draw_round(plan["id"], "2026-11", KARIN, ["lulea"])
    with pytest.raises(Invalid, match="monthly plan takes a month"):
        followup.draw_round(plan["id"], "2026-Q4", KARIN, ["lulea"])
    with pytest.raises(Invalid, match="has not started"):
        followup.draw_round(plan["id"], "2027-01", KARIN, ["lulea"])


def test_review_case_sign_off_and_lock(followup: FollowupService, engine: sa.Engine) -> None:
    plan = _plan(followup, random_sample=3, targeted_per_reason=2)
    round_ = followup.draw_round(plan["id"], "2026-11", KARIN, ["lulea"])
    items = {i["id"]: i for i in round_["items"]}
    prot = next(i for i in items.values() if "protected_not_assigned" in i["reasons"])

    with pytest.raises(NotReviewer, match=r"karin\.granskare"):
        followup.decide(prot["id"], "justified", "", SOC, ALL)  # the SOC sees it but is not the reviewer
    with pytest.raises(NotFound):
        followup.decide(prot["id"], "justified", "", officer("karin.granskare", "pitea"), ["pitea"])
    with pytest.raises(Invalid, match="needs a comment"):
        followup.decide(prot["id"], "not_justified", " ", KARIN, ["lulea"])
    with pytest.raises(Invalid, match="decision 'maybe'"):
        followup.decide(prot["id"], "maybe", "", KARIN, ["lulea"])

    decided, changes = followup.decide(
        prot["id"], "not_justified", "Ingen koppling till ärendet", KARIN, ["lulea"]
    )
    case_id = decided["case_id"]
    assert case_id and changes
    case = followup.soc.cases.detail(case_id, ["lulea"])  # type: ignore[union-attr]
    assert case["tenant"] == "lulea" and case["alerts"][0]["rule"]["id"] == "norrvakt-followup"
    assert any("Ingen koppling" in c["text"] for c in case["comments"])

    with pytest.raises(Invalid, match="not decided yet"):
        followup.sign_off(round_["id"], KARIN, ["lulea"])
    for item in items.values():
        if item["id"] != prot["id"]:
            followup.decide(item["id"], "justified", "", KARIN, ["lulea"])
    with pytest.raises(NotReviewer):
        followup.sign_off(round_["id"], SOC, ALL)
    signed = followup.sign_off(round_["id"], KARIN, ["lulea"])
    assert signed["status"] == "signed_off" and len(signed["digest"]) == 64
    journaled = followup.journal.events[-1]  # type: ignore[union-attr]
    assert (
        journaled.ecs["event.action"] == "followup-signoff" and journaled.fields["digest"] == signed["digest"]
    )
    assert signed["signoff_seq"] == journaled.seq

    verified = followup.verify(round_["id"], ["lulea"])
    assert verified["ok"], verified

    # After sign-off decisions are frozen: the service refuses, and so does the database.
    with pytest.raises(Locked):
        followup.decide(prot["id"], "justified", "", KARIN, ["lulea"])
    with pytest.raises(sa.exc.DBAPIError, match="signed off"), engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE followup_items SET decision = 'justified' WHERE id = :i"), {"i": prot["id"]}
        )
    with pytest.raises(sa.exc.DBAPIError, match="signed off"), engine.begin() as conn:
        conn.execute(sa.text("UPDATE followup_rounds SET digest = 'x' WHERE id = :i"), {"i": round_["id"]})
    with pytest.raises(sa.exc.DBAPIError, match=r"append-only|signed off"), engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM followup_items WHERE id = :i"), {"i": prot["id"]})

    # Only annotations can be added — by the reviewer or the SOC.
    note = followup.annotate(prot["id"], "Ärendet överlämnat till HR 2026-12-03", SOC, ALL)
    assert note["author"] == "soc.anna"
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(sa.text("UPDATE followup_annotations SET text = 'x' WHERE id = :i"), {"i": note["id"]})
    detail = followup.round_detail(round_["id"], ["lulea"])
    assert detail["items"][[i["id"] for i in detail["items"]].index(prot["id"])]["annotations"][0][
        "text"
    ].startswith("Ärendet")
    assert followup.verify(round_["id"], ["lulea"])["ok"]  # annotations are not part of the digest
    with pytest.raises(NotFound):
        followup.round_detail(round_["id"], ["pitea"])

    data = report.report_data(followup, round_["id"], ["lulea"], {case_id: "new"}, "karin.granskare")
    html = report.render_html(data, "Luleå kommun")
    assert "Signerad" in html and "Ingen koppling till ärendet" in html and f"#{case_id}" in html
    assert signed["digest"] in html


def test_public_holidays_are_after_hours(followup: FollowupService, month: Any) -> None:
    christmas_eve, ordinary = dt.date(2026, 12, 24), dt.date(2026, 12, 22)  # a Thursday, a Tuesday
    month.insert_events(
        parsed(
            "lulea",
            [Access(at(christmas_eve, 10), "u-2", "IFO-2"), Access(at(ordinary, 10), "u-5", "IFO-5")],
            itertools.count(10_000),
        )
    )
    round_ = followup.draw_round(_plan(followup)["id"], "2026-12", KARIN, ["lulea"])
    late = [i for i in round_["items"] if "after_hours" in i["reasons"]]
    assert [i["user_name"] for i in late] == ["u-2"]
    assert round_["reason_totals"]["after_hours"] == 1
