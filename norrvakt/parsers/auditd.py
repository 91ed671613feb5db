"""Linux audit events (auditd records, as audisp-remote sends them): the lines of one event in,
one event out. Format ``auditd``; a record's payload is the records of one event, one a line::

    node=web1 type=SYSCALL msg=audit(1764680000.123:4242): arch=c000003e syscall=59 success=yes exit=0 a0=55d0 a1=55d1 a2=55d2 a3=0 items=2 ppid=910 pid=4711 auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=3 comm="wget" exe="/usr/bin/wget" subj=unconfined key="susp_activity"\x1dARCH=x86_64 SYSCALL=execve AUID="anna" UID="root" GID="root"
    node=web1 type=EXECVE msg=audit(1764680000.123:4242): argc=3 a0="wget" a1="--post-file=/etc/passwd" a2=687474703A2F2F6578616D706C652E6F7267
    node=web1 type=CWD msg=audit(1764680000.123:4242): cwd="/home/anna"
    node=web1 type=PATH msg=audit(1764680000.123:4242): item=0 name="/usr/bin/wget" inode=1234 dev=08:01 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0
    node=web1 type=PROCTITLE msg=audit(1764680000.123:4242): proctitle=77676574002D2D706F73742D66696C653D2F6574632F706173737764

(audisp-remote does not forward the ``EOE`` record that ends an event in auditd's own log; the
listener assembles the lines by serial, see :mod:`norrvakt.sources.audisp`.)

Values the kernel considers untrusted (``proctitle``, ``name``, ``exe``, ``cwd``, ``comm``,
EXECVE's ``aN``, ``key``, ``data``) arrive unquoted as hex when they hold a space, a quote or a
control character; they are decoded (``proctitle``'s NUL separators become spaces). EXECVE
arguments split by the kernel (``a1_len=``, ``a1[0]=``, ``a1[1]=`` ...) are joined into ``a1``.
A user-space record's ``msg='op=... acct="anna" res=success'`` is read as fields too. With
``log_format = ENRICHED`` a record ends with ``\\x1d`` and upper-case translations
(``SYSCALL=execve``, ``AUID="anna"``); they are fields of their own (``SYSCALL``, ``AUID``).

**How the fields are laid out, and why.** SigmaHQ's ``product: linux, service: auditd`` rules
are written for one record at a time (``type: EXECVE`` with ``a0: wget``; ``type: SYSCALL``
with ``exe|endswith: /useradd``; ``type: PATH`` with ``name: /etc/ld.so.preload``) and the
same field name means different things in different records (``a0`` of SYSCALL is a register,
of EXECVE the program). One event therefore keeps every record whole under its type:
``SYSCALL.exe``, ``EXECVE.a0``, ``CWD.cwd``, ``PATH.name`` (the first record of a type) and
``PATH.1.name``, ``PATH.2.name`` ... for later ones, each with its ``<TYPE>.type``. The
unprefixed names (``type``, ``exe``, ``a0`` ...) are the fields of the event's *first* record —
the SYSCALL record of a kernel event, the only record of a user-space one. The log source
mapping (``norrvakt/detect/pipelines/linux.yml``, service ``auditd``) tests every auditd rule
once against that first record and once against each other record type a rule can name
(EXECVE, PATH and its later items, CWD, PROCTITLE, SOCKADDR ...), by renaming the rule's
fields to the prefixed ones: ``type: EXECVE`` + ``a0: wget`` reads ``EXECVE.type`` and
``EXECVE.a0``. Names the mapping does not rename (``key``, ``exe``, ``comm``) still read the
first record, so an EXECVE rule can ask for the SYSCALL record's ``key``. Keywords search every
value of every record.

ECS: ``event.dataset`` ``auditd.log`` (so ``norrvakt.family`` is ``auditd``), ``event.action``
(the syscall name for a kernel event, else the first record type in lower case:
``user_login``, ``add_user``), ``event.outcome`` (``success=`` / ``res=``), ``host.name``
(``node=``), ``user.id``/``user.name`` (``auid``, or ``uid`` when the login uid is unset, with
the ``AUID``/``UID`` names of an enriched record; a user-space record's ``acct=`` is the user it
is about, and then only a set ``auid`` is ``user.id``), ``process.pid``/``name``/
``executable``/``command_line`` (PROCTITLE, else EXECVE's arguments), ``file.path`` (the first
PATH record that is not the parent directory) and ``source.ip`` (``addr=`` when an address).
``SYSCALL`` is filled from a small table of x86_64/aarch64 syscall numbers when the log is not
enriched (``_syscall_named = "1"`` says so). ``_recovered = "1"`` marks an event the listener
journaled after a restart from its spool (see :mod:`norrvakt.sources.audisp_spool`).
"""  # noqa: E501 - the sample lines are kept whole

from __future__ import annotations

import re

from norrvakt.event import Event, RawRecord
from norrvakt.parsers.base import ParseError, abbrev, decode_text, is_ip, new_event

DATASET = "auditd.log"
SPOOL_HINT = "audisp.spool"  # norrvakt.sources.audisp.RECOVERED_HINT

# ``node=X type=T msg=audit(SECONDS.MILLIS:SERIAL): body`` (node= only with name_format set).
_HEAD = re.compile(r"(?:node=(\S+) )?type=(\S+) msg=audit\((\d+)(?:\.(\d{1,9}))?:(\d+)\): ?")
_KV = re.compile(r"([A-Za-z_][\w\-\[\]]*)=(\"[^\"]*\"?|'[^']*'?|\S*)")
_HEX = re.compile(r"(?:[0-9A-F]{2})+")
_ENRICH_SEP = "\x1d"
_UNSET_ID = ("4294967295", "-1")
_NO_NAME = ("?", "(unknown)", "unset", "(invalid user)")

# Fields audit writes as hex when the value holds a character it does not trust.
_ENCODED = frozenset({"proctitle", "name", "exe", "cwd", "comm", "key", "data", "path", "new", "old"})
_EXECVE_ARG = re.compile(r"a(\d+)(?:\[(\d+)\])?$")

# Syscall numbers by audit arch (for logs written without log_format = ENRICHED).
_SYSCALLS: dict[str, dict[str, str]] = {
    "c000003e": {  # x86_64
        "0": "read", "1": "write", "2": "open", "3": "close", "41": "socket", "42": "connect",
        "43": "accept", "49": "bind", "59": "execve", "62": "kill", "76": "truncate",
        "77": "ftruncate", "82": "rename", "83": "mkdir", "84": "rmdir", "85": "creat",
        "86": "link", "87": "unlink", "88": "symlink", "90": "chmod", "92": "chown",
        "99": "sysinfo", "101": "ptrace", "103": "syslog", "105": "setuid", "133": "mknod",
        "135": "personality", "165": "mount", "166": "umount2", "175": "init_module",
        "176": "delete_module", "257": "openat", "259": "mknodat", "260": "fchownat",
        "263": "unlinkat", "264": "renameat", "268": "fchmodat", "288": "accept4",
        "313": "finit_module", "316": "renameat2", "319": "memfd_create", "322": "execveat",
    },
    "c00000b7": {  # aarch64
        "33": "mknodat", "35": "unlinkat", "38": "renameat", "53": "fchmodat", "56": "openat",
        "92": "personality", "105": "init_module", "106": "delete_module", "116": "syslog",
        "179": "sysinfo", "198": "socket", "200": "bind", "203": "connect", "221": "execve",
        "273": "finit_module", "279": "memfd_create", "281": "execveat",
    },
}  # fmt: skip

Record = tuple[str, dict[str, str]]  # (type, fields)


def parse_auditd(record: RawRecord) -> Event:
    text, latin1 = decode_text(record.payload)
    records: list[Record] = []
    node = ""
    stamp: tuple[str, str, str] | None = None
    offset = 0
    for line in text.split("\n"):
        start, offset = offset, offset + len(line) + 1
        line = line.rstrip("\r")
        if not line.strip():
            continue
        head = _HEAD.match(line)
        if head is None:
            raise ParseError(
                "auditd.bad_record",
                "not an audit record",
                f"line at byte {start}: expected 'type=... msg=audit(TIME:SERIAL):', got {abbrev(line)}",
            )
        node = node or (head.group(1) or "")
        if stamp is None:
            stamp = (head.group(3), head.group(4) or "0", head.group(5))
        elif head.group(5) != stamp[2]:
            raise ParseError(
                "auditd.mixed_serials",
                "audit records of different events",
                f"line at byte {start}: serial {head.group(5)} in an event of serial {stamp[2]}",
            )
        records.append((head.group(2), _fields(head.group(2), line[head.end() :])))
    if stamp is None:
        raise ParseError("auditd.empty", "empty audit event", "no audit record in the payload")
    return _event(record, records, node, stamp, latin1)


def _fields(rtype: str, body: str) -> dict[str, str]:
    body, _, enriched = body.partition(_ENRICH_SEP)
    out: dict[str, str] = {}
    for m in _KV.finditer(body):
        key, value = m.group(1), m.group(2)
        if key == "msg" and value.startswith("'"):
            inner = value.strip("'")
            for im in _KV.finditer(inner):
                out.setdefault(im.group(1), _value(im.group(1), im.group(2), rtype))
            continue
        out[key] = _value(key, value, rtype)
    for m in _KV.finditer(enriched):
        out[m.group(1)] = m.group(2).strip('"')
    if rtype == "EXECVE":
        _join_split_args(out)
    return out


def _value(key: str, value: str, rtype: str) -> str:
    if value.startswith('"'):
        return value.strip('"')
    if value.startswith("'"):
        return value.strip("'")
    encoded = key in _ENCODED or (rtype == "EXECVE" and _EXECVE_ARG.match(key) is not None)
    if encoded and _HEX.fullmatch(value):
        raw = bytes.fromhex(value)
        if key == "proctitle":
            raw = raw.rstrip(b"\x00").replace(b"\x00", b" ")
        elif key == "key":
            raw = raw.replace(b"\x01", b",")  # several keys are separated by \x01
        return raw.decode("utf-8", "replace")
    return value


def _join_split_args(out: dict[str, str]) -> None:
    # An argument over the kernel's chunk size comes as a1_len=N a1[0]=.. a1[1]=..
    parts: dict[str, list[tuple[int, str]]] = {}
    for key in [k for k in out if "[" in k]:
        m = _EXECVE_ARG.match(key)
        if m is not None and m.group(2) is not None:
            parts.setdefault(f"a{m.group(1)}", []).append((int(m.group(2)), out.pop(key)))
    for name, chunks in parts.items():
        out.setdefault(name, "".join(v for _, v in sorted(chunks)))


def _event(
    record: RawRecord, records: list[Record], node: str, stamp: tuple[str, str, str], latin1: bool
) -> Event:
    seconds, fraction, serial = stamp
    ts = int(seconds) * 1_000_000 + int(fraction.ljust(6, "0")[:6])
    first_type, first = records[0]
    fields: dict[str, str] = {"type": first_type, **first, "auditd.serial": serial}
    seen: dict[str, int] = {}
    by_type: dict[str, dict[str, str]] = {}
    for rtype, rfields in records:
        n = seen.get(rtype, 0)
        seen[rtype] = n + 1
        prefix = f"{rtype}." if n == 0 else f"{rtype}.{n}."
        fields[prefix + "type"] = rtype
        for key, value in rfields.items():
            fields[prefix + key] = value
        by_type.setdefault(rtype, rfields)
    fields["auditd.types"] = " ".join(rtype for rtype, _ in records)
    if latin1:
        fields["_encoding"] = "latin-1"
    if record.hints and record.hints.get(SPOOL_HINT):
        # Journaled after a restart from the spool of acknowledged records: it may be only the
        # part of the event that came before the crash, or (rarely) a second copy.
        fields["_recovered"] = "1"
    syscall = by_type.get("SYSCALL", {})
    if syscall and "SYSCALL" not in syscall:
        name = _SYSCALLS.get(syscall.get("arch", ""), {}).get(syscall.get("syscall", ""))
        if name:
            fields["SYSCALL.SYSCALL"] = name
            fields["_syscall_named"] = "1"
            if first_type == "SYSCALL":
                fields["SYSCALL"] = name
    ecs = _ecs(fields, by_type, first_type, node)
    return new_event(record, ts, _message(ecs, fields, first_type), ecs, fields)


def _ecs(
    fields: dict[str, str], by_type: dict[str, dict[str, str]], first_type: str, node: str
) -> dict[str, str]:
    ecs: dict[str, str] = {"event.dataset": DATASET, "event.module": "auditd", "event.provider": first_type}
    first = by_type[first_type]
    syscall_name = fields.get("SYSCALL.SYSCALL") or by_type.get("SYSCALL", {}).get("SYSCALL", "")
    ecs["event.action"] = syscall_name if first_type == "SYSCALL" and syscall_name else first_type.lower()
    if node:
        ecs["host.name"] = node
    success = first.get("success") or first.get("res")
    if success:
        ecs["event.outcome"] = "success" if success in ("yes", "success", "1") else "failure"
    auid, uid = first.get("auid", ""), first.get("uid", "")
    login_uid = auid if auid and auid not in _UNSET_ID else ""
    acct = first.get("acct", "")
    if acct and acct not in _NO_NAME:
        # A user-space record's account is the one it is about (the login, the su target);
        # its uid is the reporting daemon's.
        ecs["user.name"] = acct
        ecs["user.id"] = login_uid
    else:
        ecs["user.id"] = login_uid or uid
        name = first.get("AUID" if login_uid else "UID", "") or first.get("id", "")
        if name and name not in _NO_NAME:
            ecs["user.name"] = name
    for key, target in (("pid", "process.pid"), ("comm", "process.name"), ("exe", "process.executable")):
        value = first.get(key, "")
        if value and value not in ("?", "(null)"):
            ecs[target] = value
    execve = by_type.get("EXECVE")
    if "PROCTITLE" in by_type and by_type["PROCTITLE"].get("proctitle"):
        ecs["process.command_line"] = by_type["PROCTITLE"]["proctitle"]
    if execve:
        args = [execve[f"a{i}"] for i in range(len(execve)) if f"a{i}" in execve]
        ecs["process.command_line"] = " ".join(args) or ecs.get("process.command_line", "")
        ecs["event.category"], ecs["event.type"] = "process", "start"
    path = _main_path(fields)
    if path:
        ecs["file.path"] = path
    addr = first.get("addr", "")
    if addr and is_ip(addr):
        ecs["source.ip"] = addr
    if first_type in ("USER_AUTH", "USER_LOGIN", "USER_ACCT", "USER_ERR"):
        ecs["event.category"] = "authentication"
    elif first_type in ("ADD_USER", "DEL_USER", "ADD_GROUP", "DEL_GROUP", "USER_MGMT", "GRP_MGMT"):
        ecs["event.category"] = "iam"
    return {k: v for k, v in ecs.items() if v}


def _main_path(fields: dict[str, str]) -> str:
    """The first PATH record's name that is not the parent directory of the object."""
    found = ""
    for n in range(64):
        prefix = "PATH." if n == 0 else f"PATH.{n}."
        name = fields.get(prefix + "name")
        if name is None:
            if prefix + "type" not in fields:
                break
            continue
        if name in ("(null)", "?"):
            continue
        if fields.get(prefix + "nametype") != "PARENT":
            return name
        found = found or name
    return found


def _message(ecs: dict[str, str], fields: dict[str, str], first_type: str) -> str:
    parts = [first_type]
    if ecs.get("event.action") and first_type == "SYSCALL":
        parts.append(ecs["event.action"])
    if ecs.get("user.name") or ecs.get("user.id"):
        parts.append(f"by {ecs.get('user.name') or ecs['user.id']}")
    parts[-1] += ":"
    what = ecs.get("process.command_line") or ecs.get("process.executable") or ecs.get("file.path")
    if what:
        parts.append(what[:200])
    key = fields.get("key", "")
    if key and key != "(null)":
        parts.append(f"[key {key}]")
    if ecs.get("event.outcome") == "failure":
        parts.append("(failed)")
    return " ".join(parts)
