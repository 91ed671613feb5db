"""Filebeat and Auditbeat documents (as Beats send them over Lumberjack or ``_bulk``).

    {"@timestamp":"2026-12-02T10:15:02.118Z","message":"Dec  2 11:15:01 web01 sshd[2211]: Failed password for invalid user admin from 10.20.30.40 port 50122 ssh2","log":{"file":{"path":"/var/log/auth.log"},"offset":88213},"input":{"type":"filestream"},"host":{"name":"web01"},"agent":{"type":"filebeat","version":"8.15.3"}}
    {"@timestamp":"2026-12-02T10:16:44.501Z","event":{"module":"auditd","category":["process"],"action":"executed","outcome":"success"},"user":{"id":"1000","name":"anna"},"process":{"pid":41412,"name":"id","executable":"/usr/bin/id","args":["id","-u"]},"auditd":{"message_type":"syscall","result":"success","summary":{"actor":{"primary":"anna","secondary":"root"},"object":{"type":"file","primary":"/usr/bin/id"},"how":"/usr/bin/id"}},"host":{"name":"app02"},"agent":{"type":"auditbeat"}}

The JSON parser has kept every field and set the ECS names the document carries
(``host.name``, ``user.name``, ``process.*``, ``event.*``); this adds what a plain reading
cannot:

- Filebeat (``agent.type: filebeat`` or a ``log.file.path``): a ``message`` that is a line of
  a syslog file (``/var/log/auth.log``: ``Mmm dd hh:mm:ss host prog[pid]: text``, or rsyslog's
  ISO time) is read as such — ``process.name``/``process.pid`` and the message after the tag —
  so that the Linux recognizers (sshd, sudo, su, PAM, ...) read it as they read syslog.
  ``host.name`` stays the Beat's; the whole line stays in the ``message`` field.
- Auditbeat's auditd module (``event.module: auditd``): ``process.command_line`` from
  ``process.args`` (or ``process.title``), ``user.name`` from the summary's actor when the
  document has none, ``event.outcome`` from ``auditd.result``, and — Auditbeat sends no
  ``message`` — a one-line summary: ``executed /usr/bin/id -u by anna as root (syscall execve,
  success)``.
"""  # noqa: E501 - the sample lines are real and kept whole

from __future__ import annotations

from dataclasses import replace
from typing import Any

from norrvakt.event import RawRecord
from norrvakt.parsers.rfc3164 import parse_3164

_PROCESS_FROM_LINE = ("process.name", "process.pid", "log.syslog.appname")


def beats_shape(
    record: RawRecord, doc: dict[str, Any], fields: dict[str, str], ecs: dict[str, str], message: str
) -> str:
    """Fill ``ecs`` for a Filebeat or Auditbeat document; the event's message."""
    if fields.get("event.module") == "auditd":
        return _auditbeat(doc, fields, ecs, message)
    if fields.get("agent.type") == "filebeat" or "log.file.path" in fields:
        return _filebeat_line(record, fields, ecs, message)
    return message


def _filebeat_line(record: RawRecord, fields: dict[str, str], ecs: dict[str, str], message: str) -> str:
    line = fields.get("message", "")
    if not line or not line[:1].isalnum() or "process.name" in ecs:
        return message
    parsed = parse_3164(replace(record, payload=b""), line, 0, False)
    if "process.name" not in parsed.ecs or "_ts_missing" in parsed.fields:
        return message  # not a syslog line: an application log, kept as it is
    for name in _PROCESS_FROM_LINE:
        if name in parsed.ecs:
            ecs.setdefault(name, parsed.ecs[name])
    if "host.name" in parsed.ecs and "host.name" not in ecs:
        ecs["host.name"] = parsed.ecs["host.name"]
    return parsed.message


def _auditbeat(doc: dict[str, Any], fields: dict[str, str], ecs: dict[str, str], message: str) -> str:
    process = doc.get("process")
    args = process.get("args") if isinstance(process, dict) else doc.get("process.args")
    command = ""
    if isinstance(args, list) and args:
        command = " ".join(str(a) for a in args)  # flattened, the list is joined with ", "
    command = command or fields.get("process.title", "")
    if command and "process.command_line" not in ecs:
        ecs["process.command_line"] = command
    actor = fields.get("auditd.summary.actor.primary", "")
    if actor and actor != "unset" and "user.name" not in ecs:
        ecs["user.name"] = actor
    result = fields.get("auditd.result", "")
    if result in ("success", "fail") and "event.outcome" not in ecs:
        ecs["event.outcome"] = "success" if result == "success" else "failure"
    if "message" in fields:
        return message
    what = fields.get("event.action") or fields.get("auditd.message_type", "event")
    target = command or fields.get("auditd.summary.object.primary") or fields.get("auditd.summary.how", "")
    text = f"{what} {target}".strip()
    if actor:
        text += f" by {actor}"
        secondary = fields.get("auditd.summary.actor.secondary", "")
        if secondary and secondary != actor:
            text += f" as {secondary}"
    detail = " ".join(x for x in (fields.get("auditd.message_type"), fields.get("auditd.data.syscall")) if x)
    tail = ", ".join(x for x in (detail, result) if x)
    return f"{text} ({tail})" if tail else text
