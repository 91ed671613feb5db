from __future__ import annotations

from pathlib import Path

import pytest

from norrvakt.detect.content.store import ContentError, ContentStore, current_rules_dir


def _stage(store: ContentStore, *packages: str) -> Path:
    staged = store.staging()
    for package in packages:
        (staged / package / "rules").mkdir(parents=True)
        (staged / package / "rules" / "r.yml").write_text("title: x\n")
    return staged


def test_nothing_installed_is_none(tmp_path: Path) -> None:
    assert current_rules_dir(tmp_path) is None
    assert ContentStore(tmp_path).rule_dirs() == []


def test_install_and_use(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    store.install(_stage(store, "sigma_core"), "r2025-01-01", {"installed_at": "1"})
    assert current_rules_dir(tmp_path) is None  # kept, not in use
    store.use("r2025-01-01")
    assert current_rules_dir(tmp_path) == tmp_path / "content" / "sigma" / "r2025-01-01"
    assert [v.name for v in store.versions()] == ["r2025-01-01"]


def test_rule_dirs_without_overlap(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    store.install(_stage(store, "sigma_core", "sigma_core+", "sigma_emerging_threats_addon"), "a", {})
    store.install(_stage(store, "sigma_core", "sigma_all_rules", "sigma_emerging_threats_addon"), "b", {})
    root = tmp_path / "content" / "sigma"
    assert store.rule_dirs("a") == [root / "a" / "sigma_core+", root / "a" / "sigma_emerging_threats_addon"]
    assert store.rule_dirs("b") == [root / "b" / "sigma_all_rules"]


def test_version_kept_is_not_replaced(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    store.install(_stage(store, "sigma_core"), "v1", {})
    with pytest.raises(ContentError, match="kept already"):
        store.install(_stage(store, "sigma_core"), "v1", {})
    assert not [p for p in store.root.iterdir() if p.name.startswith(".incoming")]


@pytest.mark.parametrize("name", ["../x", "", ".hidden", "a/b", "x" * 101])
def test_bad_version_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(ContentError):
        ContentStore(tmp_path).install(tmp_path, name, {})


def test_marker_naming_a_missing_version_is_none(tmp_path: Path) -> None:
    root = tmp_path / "content" / "sigma"
    root.mkdir(parents=True)
    (root / "current").write_text("gone\n")
    assert current_rules_dir(tmp_path) is None


def test_stale_staging_is_swept(tmp_path: Path) -> None:
    import os

    store = ContentStore(tmp_path)
    old = store.staging()
    os.utime(old, (1, 1))  # an update killed long ago
    fresh = store.staging()
    assert not old.exists() and fresh.exists()


def test_current_stamp_changes_with_use(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    assert store.current_stamp() == (None, 0)
    store.install(_stage(store, "sigma_core"), "v1", {})
    store.install(_stage(store, "sigma_core"), "v2", {})
    store.use("v1")
    first = store.current_stamp()
    store.use("v2")
    assert first[0] == "v1" and store.current_stamp()[0] == "v2"
