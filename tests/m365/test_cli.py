"""`norrvakt m365 set-credential`: from a file or stdin, encrypted, never on the command line."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from norrvakt.cli.main import main
from norrvakt.sources.m365.credentials import CredentialBox
from norrvakt.state.db import open_state, sqlite_url
from norrvakt.state.m365 import load_credential

SECRET = "cli-secret-7Q~invented"


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "norrvakt.toml"
    cfg.write_text(
        f"""
data_dir = "{tmp_path / "data"}"
[tenants]
lulea = "Luleå"
pitea = "Piteå"
[[sources]]
id = "m365-lulea"
type = "m365"
tenant = "lulea"
m365.directory_id = "6c1f0c2e-9a4b-4d7e-8f3a-2b5c7d9e1f00"
m365.client_id = "3f2e1d0c-b9a8-4765-9432-10fedcba9876"
"""
    )
    (tmp_path / "data").mkdir()
    return cfg


def test_a_secret_from_a_file_is_stored_encrypted(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET + "\n")
    result = CliRunner().invoke(
        main,
        ["--config", str(cfg), "m365", "set-credential", "-c", "m365-lulea", "--secret-file", str(secret)],
    )
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    engine = open_state(sqlite_url(tmp_path / "data"))
    row = load_credential(engine, "m365-lulea")
    engine.dispose()
    assert row is not None and row["tenant"] == "lulea" and row["kind"] == "secret"
    assert SECRET.encode() not in bytes(row["ciphertext"])
    cred = CredentialBox.open(tmp_path / "data").unseal("m365-lulea", "lulea", bytes(row["ciphertext"]))
    assert cred.secret == SECRET


def test_a_secret_from_stdin(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    result = CliRunner().invoke(
        main,
        ["--config", str(cfg), "m365", "set-credential", "-c", "m365-lulea", "--secret-file", "-"],
        input=SECRET,
    )
    assert result.exit_code == 0, result.output


def test_an_unknown_connector_and_no_secret_are_refused(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    unknown = CliRunner().invoke(
        main,
        ["--config", str(cfg), "m365", "set-credential", "-c", "m365-kiruna", "--secret-file", "-"],
        input="x",
    )
    assert unknown.exit_code == 2 and "m365-kiruna" in unknown.output
    empty = CliRunner().invoke(
        main,
        ["--config", str(cfg), "m365", "set-credential", "-c", "m365-lulea", "--secret-file", "-"],
        input="  \n",
    )
    assert empty.exit_code == 1 and "empty" in empty.output
