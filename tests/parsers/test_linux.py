"""The Linux recognizer's dispatch (norrvakt/parsers/linux.py); the message forms themselves
are golden cases under tests/samples/linux/."""

from __future__ import annotations

import pytest

from norrvakt.event import Event, RawRecord
from norrvakt.parsers import parse_record
from norrvakt.parsers.linux import BY_PROGRAM, recognize_linux_auth


def parsed(line: str) -> Event:
    record = RawRecord("lulea", "t", 1_795_726_801_000_000, "10.0.0.1:514", line.encode(), "syslog")
    return parse_record(record)


@pytest.mark.parametrize(
    "line",
    [
        "<38>Nov 26 21:43:38 web01 nginx[812]: new user: name=x, UID=0, GID=0, home=/root, shell=/bin/sh",
        "<38>Nov 26 21:43:38 web01 myapp[812]: (root) CMD (id)",
        "<38>Nov 26 21:43:38 web01 myapp[812]: FAILED LOGIN 1 FROM tty1 FOR root, Authentication failure",
        "<38>Nov 26 21:43:38 web01 myapp[812]: delete user 'anna'",
    ],
)
def test_another_programs_look_alike_is_not_claimed(line: str) -> None:
    event = parsed(line)
    assert "event.dataset" not in event.ecs and "event.action" not in event.ecs


def test_pam_lines_are_read_from_any_program() -> None:
    event = parsed(
        "<86>Nov 26 21:43:38 srv01 vsftpd[812]: pam_unix(vsftpd:auth): authentication failure; "
        "logname= uid=0 euid=0 tty=ftp ruser=anna rhost=10.1.2.3  user=anna"
    )
    assert event.ecs["event.action"] == "pam_auth_failure" and event.ecs["source.ip"] == "10.1.2.3"


def test_a_repeated_message_that_is_not_ours_is_left_alone() -> None:
    event = parsed(
        "<38>Nov 26 21:43:38 srv01 sshd[4101]: message repeated 2 times: [ Server listening on ::.]"
    )
    assert "event.dataset" not in event.ecs and "syslog.repeated" not in event.fields


def test_a_broken_repeat_line_is_not_claimed() -> None:
    event = parsed("<38>Nov 26 21:43:38 srv01 sshd[4101]: message repeated 2 times: Failed password")
    assert "event.dataset" not in event.ecs


def test_every_program_has_a_handler_that_declines_nonsense() -> None:
    for program, handler in BY_PROGRAM.items():
        event = Event(tenant="t", ts=0, ingested=0, source="s", peer="p", message="x")
        event.ecs["process.name"] = program
        assert handler(event, "no such message") is False, program
        assert recognize_linux_auth(event, RawRecord("t", "s", 0, "p", b"x", "text")) is False, program


def test_user_management_sets_group_fields_by_their_ecs_names() -> None:
    event = parsed("<86>Nov 26 22:00:01 deb12-srv usermod[2301]: add 'elin' to group 'sudo'")
    assert event.get("group.name") == "sudo" and event.ecs["user.target.name"] == "elin"


def test_usermod_password_change_and_unlock() -> None:
    changed = parsed("<86>Nov 26 22:00:01 rhel9-srv01 usermod[2301]: change user 'elin' password")
    assert changed.ecs["event.action"] == "password_changed" and changed.ecs["user.target.name"] == "elin"
    unlocked = parsed("<86>Nov 26 22:00:01 rhel9-srv01 usermod[2301]: unlock user 'elin' password")
    assert unlocked.ecs["event.action"] == "user_unlocked"
