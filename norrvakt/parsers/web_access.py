"""Web server access logs in the NCSA combined / common format (nginx, Apache, IIS-like).

    10.20.4.17 - - [26/Nov/2026:23:05:01 +0100] "GET /e-tjanster/login HTTP/1.1" 200 5123 "-" "Mozilla/5.0"
    81.2.69.160 - anna [26/Nov/2026:23:05:02 +0100] "POST /api/arenden HTTP/2.0" 403 87 "https://kommun.se/" "curl/8.5.0"
    10.20.4.17 - - [26/Nov/2026:23:05:03 +0100] "GET /.env HTTP/1.1" 404 153

A recognizer: it claims a message with exactly this shape, whatever program sent it. It sets
``event.category = web``, ``event.outcome`` (failure for status ≥ 400), ``source.ip``,
``user.name`` (when not ``-``), ``http.request.method``, ``url.path``,
``http.response.status_code``, ``user_agent.original``, and keeps the request line, bytes and
referrer in ``fields`` under ``http.*``. The log's own timestamp replaces ``ts``.
"""  # noqa: E501 - the sample lines are real and kept whole

from __future__ import annotations

import re

from norrvakt.event import Event, RawRecord
from norrvakt.parsers.base import is_ip
from norrvakt.parsers.timestamps import parse_clf_timestamp

DATASET = "web.access"

_COMBINED = re.compile(
    r'(\S+) (\S+) (\S+) \[([^\]]+)\] "((\S+) (\S+)(?: (\S+))?|[^"]*)" (\d{3}) (\d+|-)'
    r'(?: "([^"]*)" "([^"]*)")?'
)


def recognize_web_access(event: Event, record: RawRecord) -> bool:
    msg = event.message
    if not msg or msg[0] not in "0123456789abcdefABCDEF:":
        return False
    m = _COMBINED.match(msg)
    if m is None or not is_ip(m.group(1)):
        return False
    client, ident, user, when, request, method, path, proto, status, size, referrer, agent = m.groups()
    ecs = event.ecs
    fields = event.fields
    ecs["event.category"] = "web"
    ecs["event.type"] = "access"
    ecs["event.dataset"] = DATASET
    ecs["source.ip"] = client
    code = int(status)
    ecs["http.response.status_code"] = status
    ecs["event.outcome"] = "failure" if code >= 400 else "success"
    if user != "-":
        ecs["user.name"] = user
    if method:
        ecs["http.request.method"] = method
        ecs["url.path"] = path.split("?", 1)[0]
        fields["http.request.target"] = path
    if proto:
        fields["http.version"] = proto.removeprefix("HTTP/")
    fields["http.request.line"] = request
    if size != "-":
        fields["http.response.body.bytes"] = size
    if referrer and referrer != "-":
        fields["http.request.referrer"] = referrer
    if agent and agent != "-":
        ecs["user_agent.original"] = agent
    if ident != "-":
        fields["http.ident"] = ident
    ts = parse_clf_timestamp(when)
    if ts is not None:
        event.ts = ts
    return True
