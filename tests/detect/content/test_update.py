"""`norrvakt rules update` against a local stand-in for GitHub's releases API: two versions
kept, the second in use, the diff between them per rule, and a network that cannot be reached."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from norrvakt.cli.main import main
from norrvakt.detect.content import diff as content_diff
from norrvakt.detect.content.fetch import Unreachable
from norrvakt.detect.content.store import ContentStore, current_rules_dir
from norrvakt.detect.content.update import UpdateConfig, update
from tests.detect.content.conftest import ReleaseServer, zip_of

PACKAGES = ("sigma_core", "sigma_all_rules")


def _config(server: ReleaseServer) -> UpdateConfig:
    return UpdateConfig(release_url=server.api, packages=PACKAGES, timeout=5.0)


def _publish(server: ReleaseServer, tag: str, files: dict[str, str]) -> None:
    core = dict(list(files.items())[: len(files) // 2])
    server.publish(tag, {"sigma_core.zip": zip_of(core), "sigma_all_rules.zip": zip_of(files)})


def _rule_id(text: str) -> str:
    m = re.search(r"^id: *(\S+)", text, re.MULTILINE)
    assert m
    return m.group(1)


def _second_release(files: dict[str, str], extra: tuple[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The first release with one rule changed, one removed, one new, one deprecated (status) and
    one moved to the deprecated folder; and which id is which."""
    names = sorted(files)
    changed, removed, deprecated, moved = names[0], names[1], names[2], names[3]
    out = dict(files)
    out[changed] = re.sub(r"^title: (.*)$", r"title: \1 (v2)", out[changed], count=1, flags=re.MULTILINE)
    del out[removed]
    out[deprecated] = re.sub(
        r"^status: \w+$", "status: deprecated", out[deprecated], count=1, flags=re.MULTILINE
    )
    out["deprecated/" + moved.split("/")[-1]] = out.pop(moved)
    out[extra[0]] = extra[1]
    ids = {
        "changed": _rule_id(files[changed]),
        "removed": _rule_id(files[removed]),
        "deprecated": _rule_id(files[deprecated]),
        "moved": _rule_id(files[moved]),
        "new": _rule_id(extra[1]),
    }
    return out, ids


@pytest.fixture
def extra_rule() -> tuple[str, str]:
    from tests.conftest import shared_data

    path = sorted(shared_data("sigma", "rules", "windows", "process_creation").glob("*.yml"))[100]
    return f"rules/windows/process_creation/{path.name}", path.read_text(encoding="utf-8")


def test_update_keeps_the_release_and_puts_it_in_use(
    tmp_path: Path, release_server: ReleaseServer, sigma_slice: dict[str, str]
) -> None:
    _publish(release_server, "r2026-01-01", sigma_slice)
    store = ContentStore(tmp_path)
    outcome = update(store, _config(release_server))
    assert outcome.installed and outcome.in_use
    assert outcome.rules == len(sigma_slice)
    assert outcome.verified == {"sigma_core": "digest", "sigma_all_rules": "digest"}
    assert current_rules_dir(tmp_path) == tmp_path / "content" / "sigma" / "r2026-01-01"
    assert store.rule_dirs() == [tmp_path / "content" / "sigma" / "r2026-01-01" / "sigma_all_rules"]
    # the same release again: nothing fetched but the API answer, nothing changed
    before = len(release_server.requests)
    again = update(store, _config(release_server))
    assert not again.installed and again.in_use
    assert release_server.requests[before:] == ["/releases/latest"]


def test_two_versions_and_their_diff(
    tmp_path: Path, release_server: ReleaseServer, sigma_slice: dict[str, str], extra_rule: tuple[str, str]
) -> None:
    store = ContentStore(tmp_path)
    _publish(release_server, "r2026-01-01", sigma_slice)
    update(store, _config(release_server))
    second, ids = _second_release(sigma_slice, extra_rule)
    _publish(release_server, "r2026-02-01", second)
    outcome = update(store, _config(release_server))
    # kept for review, not put in use: content does not change under the SOC unseen
    assert outcome.installed and outcome.previous == "r2026-01-01" and not outcome.in_use
    assert store.current_name() == "r2026-01-01"
    assert [v.name for v in store.versions()] == ["r2026-01-01", "r2026-02-01"]
    assert content_diff.default_pair(store, None, None) == ("r2026-01-01", "r2026-02-01")
    changes = {c.id: c for c in content_diff.diff_versions(store, "r2026-01-01", "r2026-02-01")}
    assert {rid: c.change for rid, c in changes.items()} == {
        ids["changed"]: "changed",
        ids["removed"]: "removed",
        ids["deprecated"]: "deprecated",
        ids["moved"]: "deprecated",
        ids["new"]: "new",
    }
    assert "+title:" in changes[ids["changed"]].diff and "(v2)" in changes[ids["changed"]].diff
    assert "+status: deprecated" in changes[ids["deprecated"]].diff
    assert changes[ids["moved"]].path.startswith("deprecated/")
    again = update(store, _config(release_server), use=True)  # kept already; now put in use
    assert not again.installed and again.in_use and store.current_name() == "r2026-02-01"
    assert content_diff.default_pair(store, None, None) == ("r2026-01-01", "r2026-02-01")


def test_update_with_use_puts_it_in_use_at_once(
    tmp_path: Path, release_server: ReleaseServer, sigma_slice: dict[str, str], extra_rule: tuple[str, str]
) -> None:
    store = ContentStore(tmp_path)
    _publish(release_server, "r2026-01-01", sigma_slice)
    update(store, _config(release_server))
    _publish(release_server, "r2026-02-01", _second_release(sigma_slice, extra_rule)[0])
    assert update(store, _config(release_server), use=True).in_use
    assert store.current_name() == "r2026-02-01"


def test_cli_update_versions_diff(
    tmp_path: Path, release_server: ReleaseServer, sigma_slice: dict[str, str], extra_rule: tuple[str, str]
) -> None:
    config = tmp_path / "norrvakt.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "var"}"\n[detection]\ncontent_release_url = "{release_server.api}"\n'
        f"content_packages = {list(PACKAGES)!r}\n".replace("'", '"')
    )
    runner = CliRunner()
    _publish(release_server, "r2026-01-01", sigma_slice)
    first = runner.invoke(main, ["--config", str(config), "rules", "update"])
    assert first.exit_code == 0, first.output
    assert "kept content version r2026-01-01" in first.output and "sigma_core: digest" in first.output
    second, ids = _second_release(sigma_slice, extra_rule)
    _publish(release_server, "r2026-02-01", second)
    result = runner.invoke(main, ["--config", str(config), "rules", "update"])
    assert result.exit_code == 0, result.output
    assert "1 new, 1 changed, 1 removed, 2 deprecated" in result.output
    assert "kept, not in use; in use: r2026-01-01" in result.output
    listing = runner.invoke(main, ["--config", str(config), "rules", "versions", "--format", "json"])
    assert '"in_use": true' in listing.stdout and "r2026-01-01" in listing.stdout
    as_json = runner.invoke(main, ["--config", str(config), "rules", "diff", "--json"])
    assert as_json.exit_code == 0, as_json.output
    import json

    doc = json.loads(as_json.stdout)
    assert (doc["from"], doc["to"]) == ("r2026-01-01", "r2026-02-01")
    assert {c["id"] for c in doc["changes"]} == set(ids.values())
    table = runner.invoke(main, ["--config", str(config), "rules", "diff", "r2026-01-01", "r2026-02-01"])
    assert table.exit_code == 0 and "@@" in table.stdout and "(v2)" in table.stdout
    use = runner.invoke(main, ["--config", str(config), "rules", "use", "r2026-02-01"])
    assert use.exit_code == 0 and "in use now: r2026-02-01" in use.output
    assert current_rules_dir(tmp_path / "var") == tmp_path / "var" / "content" / "sigma" / "r2026-02-01"
    missing = runner.invoke(main, ["--config", str(config), "rules", "use", "r1999"])
    assert missing.exit_code == 1 and "no content version 'r1999'" in missing.output


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_keeps_the_version_in_use(
    tmp_path: Path, release_server: ReleaseServer, sigma_slice: dict[str, str]
) -> None:
    store = ContentStore(tmp_path)
    _publish(release_server, "r2026-01-01", sigma_slice)
    update(store, _config(release_server))
    offline = UpdateConfig(release_url=f"http://127.0.0.1:{_closed_port()}/releases/latest", timeout=2.0)
    with pytest.raises(Unreachable, match="cannot reach"):
        update(store, offline)
    assert store.current_name() == "r2026-01-01"


def test_cli_if_reachable_starts_with_what_it_has(tmp_path: Path) -> None:
    config = tmp_path / "norrvakt.toml"
    url = f"http://127.0.0.1:{_closed_port()}/releases/latest"
    config.write_text(f'data_dir = "{tmp_path / "var"}"\n[detection]\ncontent_release_url = "{url}"\n')
    runner = CliRunner()
    quiet = runner.invoke(main, ["--config", str(config), "rules", "update", "--if-reachable"])
    assert quiet.exit_code == 0, quiet.output
    assert "cannot reach" in quiet.output and "built-in rules only" in quiet.output
    strict = runner.invoke(main, ["--config", str(config), "rules", "update"])
    assert strict.exit_code == 1


def test_a_server_that_never_answers_gives_up_within_the_timeout(tmp_path: Path) -> None:
    import time

    with socket.socket() as silent:  # accepts connections (the backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/releases/latest"
        started = time.monotonic()
        with pytest.raises(Unreachable):
            update(ContentStore(tmp_path), UpdateConfig(release_url=url, timeout=0.5))
        assert time.monotonic() - started < 3.0
