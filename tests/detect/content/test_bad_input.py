"""Bad content is refused with the file, line and reason, and the version in use — the running
rule set — stays as it was: a bad zip, members escaping the folder (``..``, absolute paths,
symbolic links), checksum mismatches, YAML syntax errors, unknown modifiers, zip bombs."""

from __future__ import annotations

import hashlib
import re
import stat
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from norrvakt.cli.main import main
from norrvakt.detect.content.bundle import BundleRejected, Limits
from norrvakt.detect.content.fetch import FetchError
from norrvakt.detect.content.store import ContentError, ContentStore
from norrvakt.detect.content.update import UpdateConfig, derived_name, import_bundle, update
from tests.detect.content.conftest import ReleaseServer, write, zip_of


@pytest.fixture
def store(tmp_path: Path, sigma_slice: dict[str, str]) -> ContentStore:
    """A store with one good version in use."""
    store = ContentStore(tmp_path / "var")
    good = write(tmp_path / "good.zip", zip_of(dict(sigma_slice)))
    import_bundle(store, good, name="good")
    assert store.current_name() == "good"
    return store


def _unchanged(store: ContentStore) -> None:
    assert store.current_name() == "good"
    assert [v.name for v in store.versions()] == ["good"]
    assert not [p for p in store.root.iterdir() if p.name.startswith(".incoming")], "staging left behind"


def _rejected(store: ContentStore, bundle: Path, match: str) -> BundleRejected | ContentError:
    with pytest.raises(ContentError, match=match) as info:
        import_bundle(store, bundle, limits=Limits(unpacked_bytes=20 * 1024 * 1024))
    _unchanged(store)
    return info.value


def test_not_a_zip(tmp_path: Path, store: ContentStore) -> None:
    _rejected(
        store, write(tmp_path / "broken.zip", b"PK\x03\x04 this is no zip"), r"broken\.zip: not a zip file"
    )


def test_truncated_zip(tmp_path: Path, store: ContentStore, sigma_slice: dict[str, str]) -> None:
    data = zip_of(dict(sigma_slice))
    _rejected(store, write(tmp_path / "cut.zip", data[: len(data) // 2]), "not a zip file")


@pytest.mark.parametrize("member", ["../evil.yml", "rules/../../evil.yml", "/etc/evil.yml", "C:/evil.yml"])
def test_member_escaping_the_folder(tmp_path: Path, store: ContentStore, member: str) -> None:
    bundle = write(tmp_path / "slip.zip", zip_of({"rules/ok.yml": "title: ok\n", member: "title: evil\n"}))
    error = _rejected(store, bundle, "escapes the folder")
    assert f"slip.zip!{member}" in str(error)
    assert not (tmp_path / "evil.yml").exists() and not (store.root / "evil.yml").exists()


def test_symlink_member(tmp_path: Path, store: ContentStore) -> None:
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("rules/ok.yml", "title: ok\n")
        link = zipfile.ZipInfo("rules/passwd.yml")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    _rejected(store, path, r"link\.zip!rules/passwd\.yml: symbolic link")


def test_symlink_in_a_folder(tmp_path: Path, store: ContentStore) -> None:
    folder = tmp_path / "bundle"
    (folder / "rules").mkdir(parents=True)
    (folder / "rules" / "passwd.yml").symlink_to("/etc/passwd")
    _rejected(store, folder, "passwd.yml: symbolic link")


def test_zip_bomb_by_ratio(tmp_path: Path, store: ContentStore) -> None:
    bundle = write(tmp_path / "bomb.zip", zip_of({"rules/zeros.yml": b"\0" * (10 * 1024 * 1024)}))
    _rejected(store, bundle, r"bomb\.zip!rules/zeros\.yml: compression ratio \d+:1")


def test_zip_bomb_by_total_size(tmp_path: Path, store: ContentStore, sigma_slice: dict[str, str]) -> None:
    bundle = write(tmp_path / "big.zip", zip_of(dict(sigma_slice)))
    with pytest.raises(BundleRejected, match="uncompressed, more than the limit 1000"):
        import_bundle(store, bundle, limits=Limits(unpacked_bytes=1000))
    _unchanged(store)


def test_yaml_syntax_error_names_file_and_line(
    tmp_path: Path, store: ContentStore, sigma_slice: dict[str, str]
) -> None:
    files: dict[str, str | bytes] = dict(sigma_slice)
    files["rules/windows/broken.yml"] = (
        "title: broken\nid: 1\ndetection:\n  selection: [unclosed\n  condition: selection\n"
    )
    error = _rejected(store, write(tmp_path / "yaml.zip", zip_of(files)), "bad YAML")
    assert re.search(
        r"yaml/rules/windows/broken\.yml:\d+: bad YAML: .*\(line \d+, column \d+\)", str(error)
    ), str(error)


def test_unknown_modifier_names_file_and_line(
    tmp_path: Path, store: ContentStore, sigma_slice: dict[str, str]
) -> None:
    files: dict[str, str | bytes] = dict(sigma_slice)
    name = next(n for n, t in sigma_slice.items() if "|contains" in t)
    text = sigma_slice[name].replace("|contains", "|containz", 1)
    files[name] = text
    line = next(i for i, ln in enumerate(text.splitlines(), start=1) if "|containz" in ln)
    error = _rejected(store, write(tmp_path / "mod.zip", zip_of(files)), "Unknown modifier 'containz'")
    assert f"(line {line})" in str(error) and name.split("/")[-1] in str(error)


def test_folder_without_rules(tmp_path: Path, store: ContentStore) -> None:
    (tmp_path / "empty" / "docs").mkdir(parents=True)
    _rejected(store, tmp_path / "empty", r"no rules\*/ folder inside")


def test_import_folder_and_derived_name(tmp_path: Path, sigma_slice: dict[str, str]) -> None:
    folder = tmp_path / "sigma-checkout"
    for name, text in sigma_slice.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    (folder / "tests").mkdir()
    (folder / "tests" / "not-a-rule.yml").write_text("[")  # outside rules*/: not taken
    store = ContentStore(tmp_path / "var")
    outcome = import_bundle(store, folder)
    assert outcome.version == derived_name(folder) and outcome.version.startswith("import-sigma-checkout-")
    assert outcome.rules == len(sigma_slice) and outcome.in_use
    assert import_bundle(store, folder).installed is False  # the same bundle twice: one version


def test_import_source_zip_takes_the_rule_folders_only(tmp_path: Path, sigma_slice: dict[str, str]) -> None:
    files: dict[str, str | bytes] = {f"sigma-master/{name}": text for name, text in sigma_slice.items()}
    files["sigma-master/tests/config.yml"] = "not: [a rule"  # a checkout's tooling, not content
    files["sigma-master/README.md"] = "# Sigma\n"
    store = ContentStore(tmp_path / "var")
    outcome = import_bundle(store, write(tmp_path / "sigma-master.zip", zip_of(files)), name="checkout")
    assert outcome.rules == len(sigma_slice)
    assert not (store.root / "checkout" / "sigma-master" / "sigma-master" / "tests").exists()


def test_zip_without_rule_folders(tmp_path: Path, store: ContentStore) -> None:
    _rejected(
        store, write(tmp_path / "misc.zip", zip_of({"tools/x.yml": "a: 1\n"})), r"no rules\*/ folder inside"
    )


# --- through the update --------------------------------------------------------------------


def _server_store(tmp_path: Path, release_server: ReleaseServer, sigma_slice: dict[str, str]) -> ContentStore:
    store = ContentStore(tmp_path / "var")
    release_server.publish("r1", {"sigma_all_rules.zip": zip_of(dict(sigma_slice))})
    update(store, UpdateConfig(release_url=release_server.api, packages=("sigma_all_rules",), timeout=5))
    store.use("r1")
    return store


def _update_fails(store: ContentStore, server: ReleaseServer, match: str) -> None:
    with pytest.raises(ContentError, match=match):
        update(store, UpdateConfig(release_url=server.api, packages=("sigma_all_rules",), timeout=5))
    assert store.current_name() == "r1"
    assert [v.name for v in store.versions()] == ["r1"]
    assert not [p for p in store.root.iterdir() if p.name.startswith(".incoming")]


def test_digest_mismatch(tmp_path: Path, release_server: ReleaseServer, sigma_slice: dict[str, str]) -> None:
    store = _server_store(tmp_path, release_server, sigma_slice)
    release_server.publish(
        "r2",
        {"sigma_all_rules.zip": zip_of({"rules/a.yml": "title: a\n"})},
        digest_override={"sigma_all_rules.zip": "sha256:" + "0" * 64},
    )
    _update_fails(
        store, release_server, "sigma_all_rules.zip: checksum mismatch: the release says sha256:0000"
    )


def test_checksum_file_mismatch_and_match(
    tmp_path: Path, release_server: ReleaseServer, sigma_slice: dict[str, str]
) -> None:
    store = _server_store(tmp_path, release_server, sigma_slice)
    data = zip_of(dict(sigma_slice))
    wrong = f"{'1' * 64}  sigma_all_rules.zip\n".encode()
    release_server.publish(
        "r2", {"sigma_all_rules.zip": data}, digests=False, extra={"sha256sums.txt": wrong}
    )
    _update_fails(store, release_server, "the checksum file says 1111")
    right = f"{hashlib.sha256(data).hexdigest()}  sigma_all_rules.zip\n".encode()
    release_server.publish(
        "r2", {"sigma_all_rules.zip": data}, digests=False, extra={"sha256sums.txt": right}
    )
    outcome = update(
        store, UpdateConfig(release_url=release_server.api, packages=("sigma_all_rules",), timeout=5)
    )
    assert outcome.verified == {"sigma_all_rules": "checksum file"}


def test_no_digest_is_taken_as_unverified(
    tmp_path: Path, release_server: ReleaseServer, sigma_slice: dict[str, str]
) -> None:
    store = _server_store(tmp_path, release_server, sigma_slice)
    release_server.publish("r2", {"sigma_all_rules.zip": zip_of(dict(sigma_slice))}, digests=False)
    outcome = update(
        store, UpdateConfig(release_url=release_server.api, packages=("sigma_all_rules",), timeout=5)
    )
    assert outcome.verified == {"sigma_all_rules": "unverified"}
    assert store.get("r2").manifest["packages"]["sigma_all_rules"]["verified"] == "unverified"


def test_bad_zip_in_a_release(
    tmp_path: Path, release_server: ReleaseServer, sigma_slice: dict[str, str]
) -> None:
    store = _server_store(tmp_path, release_server, sigma_slice)
    release_server.publish("r2", {"sigma_all_rules.zip": b"not a zip at all"})
    _update_fails(store, release_server, "sigma_all_rules.zip: not a zip file")


def test_missing_package_and_bad_answers(
    tmp_path: Path, release_server: ReleaseServer, sigma_slice: dict[str, str]
) -> None:
    store = _server_store(tmp_path, release_server, sigma_slice)
    release_server.publish("r2", {"sigma_core.zip": zip_of({"rules/a.yml": "title: a\n"})})
    _update_fails(store, release_server, r"release r2: no asset sigma_all_rules\.zip")
    release_server.routes["/releases/latest"] = b"<html>rate limited</html>"
    _update_fails(store, release_server, "not JSON")
    release_server.routes["/releases/latest"] = b'{"tag_name": "../../etc", "assets": []}'
    _update_fails(store, release_server, "version name")
    del release_server.routes["/releases/latest"]
    with pytest.raises(FetchError, match="HTTP 404"):
        update(store, UpdateConfig(release_url=release_server.api, timeout=5))


def test_download_larger_than_the_limit(
    tmp_path: Path, release_server: ReleaseServer, sigma_slice: dict[str, str]
) -> None:
    store = _server_store(tmp_path, release_server, sigma_slice)
    release_server.publish("r2", {"sigma_all_rules.zip": zip_of(dict(sigma_slice))})
    with pytest.raises(FetchError, match="more than the limit 1000"):
        update(
            store,
            UpdateConfig(
                release_url=release_server.api,
                packages=("sigma_all_rules",),
                timeout=5,
                limits=Limits(download_bytes=1000),
            ),
        )
    assert store.current_name() == "r1"


def test_cli_rejection_names_the_problem_and_what_stays(tmp_path: Path, store: ContentStore) -> None:
    bundle = write(tmp_path / "slip.zip", zip_of({"../evil.yml": "title: evil\n"}))
    result = CliRunner().invoke(main, ["--data-dir", str(tmp_path / "var"), "rules", "import", str(bundle)])
    assert result.exit_code == 1
    assert "slip.zip!../evil.yml" in result.output and "in use still: good" in result.output
