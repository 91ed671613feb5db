"""Round-trip of an AD response action against a real Samba AD DC (tests/ad/samba_dc.py):
bind over LDAPS, find the account, modify userAccountControl, read it back — as the approve
button runs it (norrvakt/respond/ad.py), without the state database around it.

    PYTHONPATH=. .venv/bin/python bench/response_ad.py [--rounds 20]   # as root (see tests/ad)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from norrvakt.respond.ad import AdResponderConfig
from norrvakt.respond.base import ActionRequest
from tests.ad.samba_dc import running_dc


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d, running_dc(Path(d)) as dc:
        ad = AdResponderConfig(
            url=f"ldaps://{dc.host}:{dc.ldaps_port}",
            base_dn=dc.base_dn,
            bind_dn=dc.service_dn,
            password=dc.service_password,
            ca_file=str(dc.ca_file),
            tls_name=dc.tls_name,
        ).build()
        times: dict[str, list[float]] = {"ad.disable": [], "ad.enable": []}
        for i in range(args.rounds):
            for action in ("ad.disable", "ad.enable"):
                t0 = time.perf_counter()
                out = asyncio.run(ad.run(ActionRequest(i, "lulea", action, "kim.target")))
                times[action].append((time.perf_counter() - t0) * 1000)
                if not out.ok:
                    raise SystemExit(f"{action}: {out.detail}")
        result = {
            action: {
                "median_ms": round(statistics.median(v), 1),
                "p90_ms": round(sorted(v)[int(len(v) * 0.9)], 1),
            }
            for action, v in times.items()
        }
        result["dc_start_ms"] = round(dc.started_ms)  # type: ignore[assignment]
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
