"""`serve --demo` with SigmaHQ rules installed: the demo's hands-on-keyboard story raises
SigmaHQ detections of the default live set, and the banner says how many SigmaHQ rules run."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.harness import running_server

SIGMA_WINDOWS = Path(__file__).resolve().parents[3] / "shared" / "data" / "sigma" / "rules" / "windows"
EXPECTED = {"PsExec Service Installation", "Security Privileges Enumeration Via Whoami.EXE"}


@pytest.mark.skipif(not SIGMA_WINDOWS.is_dir(), reason=f"SigmaHQ rules not present at {SIGMA_WINDOWS}")
def test_demo_raises_sigmahq_alerts(tmp_path: Path) -> None:
    extra = f'[detection]\nrule_dirs = ["{SIGMA_WINDOWS}"]\n'
    with running_server(tmp_path, "--demo", extra_toml=extra) as server:
        deadline = time.monotonic() + 90
        titles: set[str] = set()
        while time.monotonic() < deadline and not titles >= EXPECTED:
            alerts = server.api("GET", "/api/alerts", params={"status": "", "limit": 1000}).json()["alerts"]
            titles = {a["rule"]["title"] for a in alerts}
            time.sleep(1)
        assert titles >= EXPECTED, sorted(titles)
        log = server.log_path.read_text(errors="replace") if server.log_path else ""
        assert "of them SigmaHQ rules" in log
