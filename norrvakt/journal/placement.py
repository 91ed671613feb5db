"""Is the evidence out of reach? Where the witnesses and the signing key are, said plainly.

Checkpoints prove nothing against someone who can rewrite the journal, re-sign it with the key
and rewrite the witness too. With shell access to the data directory that is all one step when
the witness is a folder beside it (the default, ``{data_dir}-witness``) and the key lies in
``<data_dir>/keys``. Norrvakt cannot know who may write where, but it can see the obvious
cases, and says so — in ``norrvakt verify`` (as warnings: the run still passes), in the banner
of ``norrvakt serve`` and on the admin page:

- a directory witness inside the data directory, or on the same file system (same ``st_dev``);
- an HTTP witness on this machine (``localhost``, ``127.0.0.0/8``, ``::1``);
- no witness at all;
- the signing key kept in the data directory (no ``integrity.signing_key_file``), or a key file
  inside it.

docs/operations.md ("Keeping the evidence out of reach") shows the setup that avoids each.
"""

from __future__ import annotations

import ipaddress
import os
import textwrap
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from norrvakt.journal.keys import KeyRing
from norrvakt.journal.report import SETUP, Finding
from norrvakt.journal.witness import Witness

HOWTO = "see docs/operations.md, 'Keeping the evidence out of reach'"


def setup_warnings(
    data_dir: Path, witnesses: Iterable[Witness], key_dir: Path, key_file: Path | None
) -> list[Finding]:
    """``key_dir``: the key ring's folder; ``key_file``: integrity.signing_key_file, if set — taken
    from the settings, never from a key ring that read it (verifying needs no private key, and
    whoever verifies may not be allowed to read it)."""
    data = data_dir.resolve()
    out = []
    witnesses = list(witnesses)
    if not witnesses:
        out.append(
            Finding(
                SETUP,
                "setup.no_witness",
                "no witness is configured (integrity.witnesses): a data directory rolled back or "
                f"rewritten as a whole, checkpoints included, cannot be detected — {HOWTO}",
            )
        )
    for w in witnesses:
        where = w.location
        if where is not None:
            problem = _same_place(data, where.resolve())
            if problem:
                out.append(
                    Finding(
                        SETUP,
                        "setup.witness_same_fs",
                        f"witness {w.name} is {problem} as the data directory {data}: whoever can rewrite "
                        "the data directory can most likely rewrite this witness too, so it proves little "
                        f"against them — put the witness on another host ({HOWTO})",
                    )
                )
        elif _on_this_host(w.name):
            out.append(
                Finding(
                    SETUP,
                    "setup.witness_local",
                    f"witness {w.name} runs on this machine: whoever controls the machine controls the "
                    f"witness — run it on another host ({HOWTO})",
                )
            )
    if key_file is None:
        out.append(
            Finding(
                SETUP,
                "setup.key_in_data",
                f"the checkpoint signing key is kept in {key_dir}: whoever can write the data "
                "directory can read it and re-sign a rewritten history — set integrity.signing_key_file "
                f"to a key the service reads once at start ({HOWTO})",
            )
        )
    elif left := sorted(p.name for p in key_dir.glob("*.key") if p.with_suffix(".pub").exists()):
        out.append(
            Finding(
                SETUP,
                "setup.key_in_data",
                f"private keys are still in {key_dir} ({', '.join(left)}) although the signing key "
                "comes from integrity.signing_key_file: they can sign a rewritten history as well as "
                "the new one — delete them (their .pub and .intro stay)",
            )
        )
    if key_file is not None and key_file.resolve().is_relative_to(data):
        out.append(
            Finding(
                SETUP,
                "setup.key_in_data",
                f"integrity.signing_key_file {key_file} is inside the data directory {data}: keep it "
                f"where the data directory's users cannot read it ({HOWTO})",
            )
        )
    return out


def _same_place(data: Path, witness: Path) -> str:
    if witness == data or witness.is_relative_to(data):
        return "inside the same folder"
    probe = witness
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent  # not created yet: it will live on its nearest existing parent
    try:
        same = os.stat(probe).st_dev == os.stat(data).st_dev
    except OSError:
        return ""
    return "on the same file system" if same else ""


def _on_this_host(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def banner_lines(data_dir: Path, witnesses: Iterable[Witness], keys: KeyRing) -> list[str]:
    """The warnings as `norrvakt serve` prints them under its banner."""
    out = []
    for w in setup_warnings(data_dir, witnesses, keys.directory, keys.signing_key_file):
        wrapped = textwrap.wrap(w.detail, 92)
        out.append(f"  Warning:       {wrapped[0]}")
        out += [f"                 {line}" for line in wrapped[1:]]
    return out
