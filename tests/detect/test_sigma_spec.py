"""Golden tests of the Sigma specification (the version pySigma supports), feature by feature.

Each feature has a rule written here, an event it must fire on and one it must not; what the
engine does not evaluate is shown to be reported per rule, with the reason, in the load report.
The features: correlations with several ``group-by`` fields, ``aliases``, ``generate``,
extended (boolean) temporal conditions; Sigma filters (meta rules); ``|expand`` placeholders
filled per tenant; ``|fieldref``, ``|exists``, ``|cidr`` with IPv6.
"""

from __future__ import annotations

import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from norrvakt.config import ConfigError, Settings, load_settings
from norrvakt.detect.correlate import Correlator
from norrvakt.detect.detection import Detection, DetectionEngine
from norrvakt.detect.engine import RuleSet
from norrvakt.detect.live import load_engine
from norrvakt.detect.logsource import Pipeline, load_pipeline
from norrvakt.detect.placeholders import with_placeholders
from norrvakt.detect.report import LoadReport
from norrvakt.event import Event

from .helpers import fires, not_loaded_reason, rule_yaml

S = 1_000_000
SEQ = iter(range(1, 10**9))

BASE = """
title: Failed login
id: 7a1f0c55-0000-4000-8000-000000000001
name: failed
logsource: {category: norrvakt_test}
detection: {sel: {outcome: failure}, condition: sel}
level: low
---
title: Good login
id: 7a1f0c55-0000-4000-8000-000000000002
name: good
logsource: {category: norrvakt_test}
detection: {sel: {outcome: success}, condition: sel}
level: low
---
title: Password reset
id: 7a1f0c55-0000-4000-8000-000000000003
name: reset
logsource: {category: norrvakt_test}
detection: {sel: {outcome: reset}, condition: sel}
level: low
"""


def ev(t: float, outcome: str = "failure", tenant: str = "lulea", **fields: str) -> Event:
    return Event(
        tenant=tenant,
        ts=int(t * S),
        ingested=int(t * S),
        source="test",
        peer="test",
        fields={"outcome": outcome, **fields},
        seq=next(SEQ),
    )


def correlation(body: str, *, title: str = "Corr", rid: str = "7a1f0c55-0000-4000-8000-0000000000c1") -> str:
    return f"title: {title}\nid: {rid}\nlevel: high\ncorrelation:\n" + textwrap.indent(
        textwrap.dedent(body).strip("\n"), "  "
    )


def engine(*texts: str, pipeline: Pipeline | None = None) -> tuple[DetectionEngine, LoadReport]:
    rules, report = RuleSet.from_yaml(*texts, pipeline=pipeline)
    return DetectionEngine(
        rules, Correlator(rules.correlations, len(rules.rules), None, rules.derived)
    ), report


def loaded(*texts: str, pipeline: Pipeline | None = None) -> DetectionEngine:
    e, report = engine(*texts, pipeline=pipeline)
    assert not report.not_loaded, [x.reason for x in report.not_loaded]
    return e


def titles(found: list[Detection]) -> list[str]:
    return [d.title for d in found]


def reason_of(report: LoadReport, kind: str) -> str:
    rows = [e for e in report.not_loaded if e.kind == kind]
    assert rows, f"no {kind} was reported as not loaded"
    return "; ".join(e.reason for e in rows)


# --- correlations: several group-by fields, aliases, generate ---------------------------------


def test_correlation_groups_by_several_fields() -> None:
    e = loaded(
        BASE,
        correlation("""
        type: event_count
        rules: [failed]
        group-by: [ip, user]
        timespan: 1m
        condition: {gte: 3}
        """),
    )
    # same ip, three different users: three groups of one, nothing fires
    assert titles(e.process([ev(i, ip="10.0.0.5", user=u) for i, u in enumerate("abc")])) == []
    found = e.process([ev(10 + i, ip="10.0.0.5", user="anna") for i in range(3)])
    assert titles(found) == ["Corr"]
    assert found[0].group == (("ip", "10.0.0.5"), ("user", "anna"))
    # an event missing one of the fields joins no group
    assert titles(e.process([ev(20 + i, ip="10.0.0.5") for i in range(5)])) == []


def test_aliases_join_differently_named_fields() -> None:
    e = loaded(
        BASE,
        correlation("""
        type: temporal
        rules: [failed, good]
        group-by: [account]
        timespan: 5m
        aliases:
          account: {failed: TargetUserName, good: UserName}
        """),
    )
    assert titles(e.process([ev(0, TargetUserName="anna"), ev(1, "success", UserName="bertil")])) == []
    found = e.process([ev(2, "success", UserName="anna")])
    assert titles(found) == ["Corr"] and found[0].group == (("account", "anna"),)


def test_alias_that_leaves_out_a_rule_is_reported() -> None:
    _, report = engine(
        BASE,
        correlation("""
        type: temporal
        rules: [failed, good]
        group-by: [account]
        timespan: 5m
        aliases:
          account: {failed: TargetUserName}
        """),
    )
    assert "alias 'account' names no field for rule(s) good" in reason_of(report, "correlation")


@pytest.mark.parametrize(("generate", "expected"), [(False, []), (True, ["Failed login"])])
def test_generate(generate: bool, expected: list[str]) -> None:
    e = loaded(
        BASE,
        correlation(f"""
        type: event_count
        rules: [failed]
        group-by: [ip]
        timespan: 1m
        condition: {{gte: 2}}
        generate: {str(generate).lower()}
        """),
    )
    assert titles(e.process([ev(0, ip="a")])) == expected  # the base rule on its own
    assert titles(e.process([ev(1, ip="a")])) == [*expected, "Corr"]


# --- correlations: extended (boolean) temporal conditions -------------------------------------


EXTENDED = """
type: temporal
rules: [failed, good, reset]
group-by: [user]
timespan: 10m
condition: failed and (good or reset)
"""


def test_extended_temporal_condition() -> None:
    e = loaded(BASE, correlation(EXTENDED))
    assert titles(e.process([ev(0, user="anna"), ev(1, user="anna")])) == []  # failed alone
    assert titles(e.process([ev(2, "success", user="bertil")])) == []  # another group
    found = e.process([ev(3, "reset", user="anna")])
    assert titles(found) == ["Corr"] and found[0].group == (("user", "anna"),)
    assert "failed and (good or reset)" in found[0].detail
    # the window starts over, then closes: a late good login does not complete it
    assert titles(e.process([ev(10, user="cecilia"), ev(700, "success", user="cecilia")])) == []


def test_extended_condition_without_rules_list() -> None:
    text = EXTENDED.replace("rules: [failed, good, reset]\n", "")
    e = loaded(BASE, correlation(text))
    assert titles(e.process([ev(0, user="anna"), ev(1, "success", user="anna")])) == ["Corr"]


def test_extended_condition_with_not_is_judged_when_the_window_has_passed() -> None:
    body = EXTENDED.replace("failed and (good or reset)", "failed and not (good or reset)")
    e = loaded(BASE, correlation(body))
    # anna fails, then resets her password: fine; bertil fails and nothing follows
    assert titles(e.process([ev(0, user="anna"), ev(1, user="bertil"), ev(30, "reset", user="anna")])) == []
    assert e.tick(2 * S) == []  # the windows are still open
    found = e.process([ev(601, "success", user="cecilia")])  # event time passes both windows
    found += e.tick(602 * S)
    assert [(d.title, d.group) for d in found] == [("Corr", (("user", "bertil"),))]
    # a good login alone opens a window that can never make "failed and ..." true
    assert e.flush() == []


def test_extended_condition_on_temporal_ordered_is_reported() -> None:
    _, report = engine(BASE, correlation(EXTENDED.replace("type: temporal", "type: temporal_ordered")))
    assert "only temporal is supported" in reason_of(report, "correlation")


def test_malformed_extended_condition_is_reported_and_the_file_still_loads() -> None:
    body = EXTENDED.replace("failed and (good or reset)", "failed and good")  # reset listed, unused
    rules, report = RuleSet.from_yaml(BASE + "---\n" + correlation(body))
    assert "not referenced in extended condition: reset" in reason_of(report, "correlation")
    assert len(rules) == 3  # the rules of the same file load


# --- Sigma filters (meta rules) -----------------------------------------------------------------


def sigma_filter(
    rules: str, selection: str = "{host: testhost}", logsource: str = "{category: norrvakt_test}"
) -> str:
    return (
        "title: Not the test host\nid: 7a1f0c55-0000-4000-8000-0000000000f1\n"
        f"logsource: {logsource}\nfilter:\n  rules: {rules}\n  selection: {selection}\n"
        "  condition: not selection\n"
    )


def test_filter_applies_to_the_rules_it_names() -> None:
    rules, report = RuleSet.from_yaml(BASE + "---\n" + sigma_filter("[7a1f0c55-0000-4000-8000-000000000001]"))
    assert not report.not_loaded
    names = lambda e: [r.rule.title for r in rules.match(e)]  # noqa: E731
    assert names(ev(0, host="prod")) == ["Failed login"]
    assert names(ev(0, host="testhost")) == []  # filtered
    assert names(ev(0, "success", host="testhost")) == ["Good login"]  # not named by the filter
    rows = {e.title: e for e in report.entries}
    assert "filtered by Not the test host" in rows["Failed login"].reason
    assert (
        rows["Not the test host"].kind == "filter"
        and "applied to 1 rules" in rows["Not the test host"].reason
    )


def test_filter_by_rule_name_and_with_list_values() -> None:
    text = BASE + "---\n" + sigma_filter("[failed, good]", "{host: [testhost, buildhost]}")
    rules, _ = RuleSet.from_yaml(text)
    assert not rules.match(ev(0, host="buildhost")) and not rules.match(ev(0, "success", host="testhost"))
    assert rules.match(ev(0, "reset", host="testhost"))  # reset is not named


def test_filter_with_another_logsource_does_not_apply() -> None:
    text = BASE + "---\n" + sigma_filter("[failed]", logsource="{product: windows, service: security}")
    rules, report = RuleSet.from_yaml(text)
    assert rules.match(ev(0, host="testhost"))
    assert any(e.kind == "filter" and "applied to 0 rules" in e.reason for e in report.entries)


# --- |expand placeholders, per tenant ------------------------------------------------------------

ADMINS = rule_yaml("sel: {SubjectUserName|expand: '%admins%'}\ncondition: sel", title="Admin logon")
TENANTS = ["lulea", "boden", "pitea", "kiruna"]


def per_tenant() -> Pipeline:
    return with_placeholders(
        load_pipeline(),
        {
            "lulea": {"admins": ["lul-adm-*", "anna.admin"]},
            "boden": {"admins": ["bod-adm-*"], "servers": ["BODSRV*"]},
            "*": {"servers": ["SRV*"]},
        },
        TENANTS,
    )


def user(tenant: str, name: str) -> Event:
    return ev(0, tenant=tenant, SubjectUserName=name)


def test_expand_is_filled_per_tenant() -> None:
    rules, report = RuleSet.from_yaml(ADMINS, pipeline=per_tenant())
    assert len(rules) == 1
    assert rules.match(user("lulea", "LUL-ADM-erik")) and rules.match(user("lulea", "anna.admin"))
    assert not rules.match(user("lulea", "bod-adm-erik"))  # Boden's admin, in Luleå's events
    assert rules.match(user("boden", "bod-adm-erik")) and not rules.match(user("boden", "anna.admin"))
    # Piteå and Kiruna have no admins: reported, named, and never matched
    assert not rules.match(user("pitea", "lul-adm-erik"))
    (row,) = [e for e in report.entries if e.kind == "rule"]
    assert row.loaded and "%admins% has no values for tenant(s) kiruna, pitea" in row.reason


def test_expand_shared_values_and_a_tenants_own() -> None:
    servers = rule_yaml("sel: {Computer|expand|startswith: '%servers%'}\ncondition: sel")
    rules, report = RuleSet.from_yaml(servers, pipeline=per_tenant())
    assert not report.not_loaded and "has no values" not in report.entries[0].reason
    assert rules.match(ev(0, tenant="pitea", Computer="srv12.pitea.se"))  # "*" values
    assert not rules.match(ev(0, tenant="boden", Computer="srv12.boden.se"))  # Boden has its own
    assert rules.match(ev(0, tenant="boden", Computer="bodsrv3"))


def test_expand_in_a_regular_expression() -> None:
    pipeline = with_placeholders(
        load_pipeline(), {"lulea": {"admins": ["lul-adm-[0-9]+"]}}, ["lulea", "boden"]
    )
    text = rule_yaml("sel: {SubjectUserName|re|expand: '^%admins%$'}\ncondition: sel")
    rules, report = RuleSet.from_yaml(text, pipeline=pipeline)
    assert len(rules) == 1 and "tenant(s) boden" in report.entries[0].reason
    assert rules.match(user("lulea", "lul-adm-42")) and not rules.match(user("lulea", "lul-adm-x"))
    assert not rules.match(user("boden", "lul-adm-42"))


def test_expand_in_a_sigma_filter_is_per_tenant() -> None:
    """A filter that leaves out each municipality's own admin accounts."""
    pipeline = with_placeholders(
        load_pipeline(), {"lulea": {"admins": ["lul-adm-*"]}, "*": {"admins": ["adm-*"]}}, ["lulea", "boden"]
    )
    text = (
        rule_yaml("sel: {EventID: 4672}\ncondition: sel")
        + "---\n"
        + sigma_filter("[5d3b6a1e-0000-4000-8000-000000000001]", "{SubjectUserName|expand: '%admins%'}")
    )
    rules, report = RuleSet.from_yaml(text, pipeline=pipeline)
    assert not report.not_loaded
    assert not rules.match(ev(0, tenant="lulea", EventID="4672", SubjectUserName="lul-adm-anna"))
    assert rules.match(ev(0, tenant="boden", EventID="4672", SubjectUserName="lul-adm-anna"))
    assert not rules.match(ev(0, tenant="boden", EventID="4672", SubjectUserName="adm-bertil"))
    assert rules.match(ev(0, tenant="lulea", EventID="4672", SubjectUserName="adm-bertil"))


def test_expand_without_values_for_any_tenant_is_not_loaded() -> None:
    rules, report = RuleSet.from_yaml(
        rule_yaml("sel: {Computer|expand: '%jump_hosts%'}\ncondition: sel"), pipeline=per_tenant()
    )
    assert len(rules) == 0
    reason = reason_of(report, "rule")
    assert "%jump_hosts%" in reason and "kiruna, lulea, pitea" in reason.replace("boden, ", "")


def test_expand_without_tenant_values_uses_the_mapping() -> None:
    rules, report = RuleSet.from_yaml(
        ADMINS, pipeline=with_placeholders(load_pipeline(), {"*": {"admins": ["adm-*"]}})
    )
    assert not report.not_loaded
    assert rules.match(user("kiruna", "adm-x")) and not rules.match(user("kiruna", "x"))
    assert len(rules.plan.branches) == 1  # no tenant test when every tenant shares the values


def test_placeholder_values_are_part_of_the_cache_key() -> None:
    base = load_pipeline()
    one = with_placeholders(base, {"lulea": {"admins": ["a"]}}, TENANTS)
    two = with_placeholders(base, {"lulea": {"admins": ["b"]}}, TENANTS)
    assert len({base.digest, one.digest, two.digest}) == 3


def test_placeholders_setting(tmp_path: Path) -> None:
    path = tmp_path / "norrvakt.toml"
    path.write_text(
        '[detection.placeholders.lulea]\nadmins = ["lul-adm-*"]\n'
        '[detection.placeholders."*"]\nservers = ["SRV*"]\n'
    )
    settings = load_settings(path)
    assert settings.detection.placeholders == {"lulea": {"admins": ["lul-adm-*"]}, "*": {"servers": ["SRV*"]}}
    path.write_text('[detection.placeholders.atlantis]\nadmins = ["x"]\n')
    with pytest.raises(ConfigError, match="not a configured tenant"):
        load_settings(path)
    path.write_text("[detection.placeholders.lulea]\nadmins = 3\n")
    with pytest.raises(ConfigError, match="list of strings"):
        load_settings(path)


def test_live_detection_reads_the_placeholders_setting(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "admins.yml").write_text(ADMINS)
    base = Settings(data_dir=str(tmp_path / "data"))
    placeholders = {"lulea": {"admins": ["lul-adm-*"]}}
    settings = replace(
        base, detection=replace(base.detection, rule_dirs=[str(rules)], placeholders=placeholders)
    )
    engine, report = load_engine(settings)
    (row,) = [e for e in report.entries if e.title == "Admin logon"]
    assert row.loaded and "has no values for tenant(s) " in row.reason and "pitea" in row.reason
    found = engine.process([user("lulea", "lul-adm-erik"), user("boden", "lul-adm-erik")])
    assert [(d.title, d.tenant) for d in found] == [("Admin logon", "lulea")]


# --- |fieldref, |exists, |cidr -------------------------------------------------------------------


def test_fieldref() -> None:
    detection = "sel: {TargetUserName|fieldref: SubjectUserName}\ncondition: sel"
    assert fires(detection, TargetUserName="Anna", SubjectUserName="anna")
    assert not fires(detection, TargetUserName="anna", SubjectUserName="bertil")
    assert not fires(detection, TargetUserName="anna")  # the other field absent


def test_fieldref_with_endswith() -> None:
    detection = "sel: {Image|fieldref|endswith: OriginalFileName}\ncondition: sel"
    assert fires(detection, Image="C:\\Temp\\evil\\rundll32.exe", OriginalFileName="RUNDLL32.EXE")
    assert not fires(detection, Image="C:\\Temp\\rundll32.exe.bak", OriginalFileName="rundll32.exe")


def test_exists() -> None:
    assert fires("sel: {ParentImage|exists: true}\ncondition: sel", ParentImage="")
    assert not fires("sel: {ParentImage|exists: true}\ncondition: sel", Image="x")
    assert fires("sel: {ParentImage|exists: false}\ncondition: sel", Image="x")
    assert not fires("sel: {ParentImage|exists: false}\ncondition: sel", ParentImage="c:\\x.exe")


@pytest.mark.parametrize(
    ("network", "ip", "expected"),
    [
        ("2001:db8:abcd::/48", "2001:db8:abcd:12::7", True),
        ("2001:db8:abcd::/48", "2001:db8:abce::7", False),
        ("2001:db8:abcd::/48", "2001:DB8:ABCD::1", True),  # as some sources log it
        ("2001:db8:abcd::/48", "[2001:db8:abcd::1]", True),  # bracketed, as in host:port text
        ("fe80::/10", "fe80::1c2:3%12", True),  # with a zone index
        ("::1/128", "::1", True),
        ("2001:db8::/32", "10.1.2.3", False),  # an IPv4 address is in no IPv6 network
        ("10.0.0.0/8", "2001:db8::1", False),
        ("2001:db8::/32", "not an address", False),
    ],
)
def test_cidr_ipv6(network: str, ip: str, expected: bool) -> None:
    assert fires(f"sel: {{IpAddress|cidr: '{network}'}}\ncondition: sel", IpAddress=ip) is expected


def test_cidr_list_with_ipv4_and_ipv6() -> None:
    detection = "sel: {IpAddress|cidr: ['10.0.0.0/8', 'fd00::/8']}\ncondition: not sel"
    assert not fires(detection, IpAddress="fd12:3456::1") and not fires(detection, IpAddress="10.9.8.7")
    assert fires(detection, IpAddress="2a00:1450::200e")


@pytest.mark.parametrize(
    ("network", "reason"),
    [
        ("2001:db8::/129", "does not appear to be an IPv4 or IPv6 network"),
        ("2001:db8::1/64", "host bits set"),
    ],
)
def test_bad_ipv6_network_is_reported(network: str, reason: str) -> None:
    assert reason in not_loaded_reason(f"sel: {{IpAddress|cidr: '{network}'}}\ncondition: sel")
