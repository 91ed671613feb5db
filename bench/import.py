"""`norrvakt import` of all of ../shared/data/evtx-attack-samples: events/s and an exact count.

Runs the real CLI on a fresh data directory (no server, so the importer owns the directory),
then counts what is searchable. A count other than the number of records in the files fails.

    .venv/bin/python bench/import.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time

from _common import REPO, SHARED, print_table, write_result

EXPECTED = 8255  # records in evtx-attack-samples (277 files)


def main() -> None:
    samples = SHARED / "evtx-attack-samples"
    if not samples.exists():
        raise SystemExit(f"{samples} is missing")
    files = sorted(samples.rglob("*.evtx"))
    with tempfile.TemporaryDirectory(prefix="norrvakt-import-") as tmp:
        cli = [sys.executable, "-m", "norrvakt.cli", "--data-dir", tmp]
        start = time.monotonic()
        proc = subprocess.run(
            [*cli, "import", "--tenant", "lulea", str(samples)], capture_output=True, text=True, cwd=REPO
        )
        elapsed = time.monotonic() - start
        import re

        inner = re.search(r"in ([\d.]+) s", proc.stderr)
        import_s = float(inner.group(1)) if inner else elapsed
        if proc.returncode != 0:
            raise SystemExit(f"import failed:\n{proc.stderr[-3000:]}")
        out = subprocess.run(
            [*cli, "search", "", "--format", "json", "--limit", "1"],
            capture_output=True,
            text=True,
            cwd=REPO,
            check=True,
        )
        total = json.loads(out.stdout)["total"]
        out = subprocess.run(
            [*cli, "search", "event.kind:pipeline_error", "--format", "json", "--limit", "5"],
            capture_output=True,
            text=True,
            cwd=REPO,
            check=True,
        )
        errors = json.loads(out.stdout)
    result = {
        "files": len(files),
        "events_stored": total,
        "events_expected": EXPECTED,
        "pipeline_errors": errors["total"],
        "seconds_cli_total": round(elapsed, 2),
        "seconds_import": round(import_s, 2),
        "events_per_s": round(total / import_s),
        "note": "seconds_import: reading, parsing, journaling (fsync) until searchable; "
        "seconds_cli_total adds process start-up (Python imports, chDB start)",
    }
    path = write_result("import", result)
    print_table(f"import ({path.relative_to(REPO)})", [(k, str(v)) for k, v in result.items()])
    if total != EXPECTED:
        raise SystemExit(f"count mismatch: {total} stored, {EXPECTED} expected")


if __name__ == "__main__":
    main()
