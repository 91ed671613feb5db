"""cron and crontab: vixie cron (Debian, Ubuntu), cronie (RHEL 6-9, SUSE) and RHEL 5's
vixie-cron, plus anacron's job lines.

    CRON[2233]: (root) CMD (   cd / && run-parts --report /etc/cron.hourly)
    CROND[5120]: (root) CMD (run-parts /etc/cron.hourly)
    crond[812]: (root) RELOAD (/var/spool/cron/root)
    crontab[4001]: (anna) REPLACE (anna)
    anacron[2250]: Job `cron.daily' started

Every cron line is ``(user) VERB (detail)``: ``cron.user``, ``cron.verb`` and ``cron.detail``
are kept; CMD is a job run (``process.command_line`` = the job), the crontab verbs (BEGIN
EDIT, REPLACE, LIST, DELETE) a change or read of a user's crontab (``user.name`` who did it,
``user.target.name`` whose crontab). ``pam_unix(cron:session)`` lines go to the PAM reader.
"""

from __future__ import annotations

import re

from norrvakt.event import Event
from norrvakt.parsers.linux_base import DATASET_CRON, classify, set_target, set_user
from norrvakt.parsers.linux_pam import parse_pam

_LINE = re.compile(r"\(([^()\s]*)\) ([A-Za-z][A-Za-z ]*?) \((.*)\)$")
_ANACRON_JOB = re.compile(r"Job [`']([^']+)' (started|terminated)")

# verb -> (event.category, event.type, event.action, event.outcome)
_VERBS: dict[str, tuple[str, str, str, str | None]] = {
    "CMD": ("process", "start", "cron_command", "success"),
    "CMDEND": ("process", "end", "cron_command_end", None),
    "REPLACE": ("configuration", "change", "crontab_replace", "success"),
    "BEGIN EDIT": ("configuration", "access", "crontab_edit", None),
    "END EDIT": ("configuration", "access", "crontab_edit_end", None),
    "LIST": ("configuration", "access", "crontab_list", None),
    "DELETE": ("configuration", "deletion", "crontab_delete", "success"),
    "RELOAD": ("configuration", "change", "cron_reload", None),
    "ORPHAN": ("configuration", "info", "cron_orphan", None),
}
# crontab(1)'s verbs, whose detail is the user whose crontab it is.
_CRONTAB_VERBS = frozenset({"REPLACE", "BEGIN EDIT", "END EDIT", "LIST", "DELETE"})


def parse_cron(event: Event, msg: str) -> bool:
    if msg.startswith("pam_"):
        return parse_pam(event, msg)
    m = _LINE.match(msg)
    if m is None:
        j = _ANACRON_JOB.match(msg)
        if j is None:
            return False
        started = j.group(2) == "started"
        classify(
            event, "process", "start" if started else "end", f"cron_job_{j.group(2)}", None, DATASET_CRON
        )
        event.fields["cron.job"] = j.group(1)
        return True
    user, verb, detail = m.group(1), m.group(2), m.group(3)
    f = event.fields
    f["cron.user"] = user
    f["cron.verb"] = verb
    f["cron.detail"] = detail
    known = _VERBS.get(verb)
    if known is None:
        # STARTUP, INFO, MAIL, "BAD FILE MODE" ...: kept, with no category to claim.
        event.ecs["event.action"] = "cron_" + verb.lower().replace(" ", "_")
        event.ecs["event.dataset"] = DATASET_CRON
    else:
        category, type_, action, outcome = known
        classify(event, category, type_, action, outcome, DATASET_CRON)
    # (CRON) and (*system*) are cron itself, not an account.
    if user and user != "CRON" and not user.startswith("*"):
        set_user(event, "cron.user", user)
    if verb == "CMD" or verb == "CMDEND":
        event.ecs["process.command_line"] = detail.strip()
    elif verb in _CRONTAB_VERBS and detail and " " not in detail:
        set_target(event, "cron.target_user", detail)
    return True
