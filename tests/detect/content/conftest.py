"""A local stand-in for GitHub's releases API and asset downloads (stdlib http.server in a
thread), and SigmaHQ-shaped release zips the tests build at test time from
../shared/data/sigma/rules (skipped, with the reason, when absent — no SigmaHQ rule is
committed here)."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import threading
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import shared_data

# A small, fixed slice of SigmaHQ's rules keeps every compile short.
SLICE = (("windows/process_creation", 40), ("linux/process_creation", 10), ("cloud/azure", 10))


@pytest.fixture(scope="session")
def sigma_slice() -> dict[str, str]:
    base = shared_data("sigma", "rules")
    files: dict[str, str] = {}
    for folder, count in SLICE:
        for path in sorted((base / folder).glob("*.yml"))[:count]:
            files[f"rules/{path.relative_to(base)}"] = path.read_text(encoding="utf-8")
    return files


@dataclass
class ReleaseServer:
    """Serves ``/releases/latest`` (the API answer) and ``/download/<tag>/<asset>``."""

    url: str
    routes: dict[str, bytes] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    @property
    def api(self) -> str:
        return f"{self.url}/releases/latest"

    def publish(
        self,
        tag: str,
        assets: dict[str, bytes],
        *,
        digests: bool = True,
        digest_override: dict[str, str] | None = None,
        extra: dict[str, bytes] | None = None,
    ) -> None:
        entries = []
        for name, data in {**assets, **(extra or {})}.items():
            self.routes[f"/download/{tag}/{name}"] = data
            entry = {
                "name": name,
                "size": len(data),
                "browser_download_url": f"{self.url}/download/{tag}/{name}",
            }
            if digests and name in assets:
                entry["digest"] = (digest_override or {}).get(
                    name, "sha256:" + hashlib.sha256(data).hexdigest()
                )
            entries.append(entry)
        self.routes["/releases/latest"] = json.dumps({"tag_name": tag, "assets": entries}).encode()


@pytest.fixture
def release_server() -> Iterator[ReleaseServer]:
    server_state: dict[str, ReleaseServer] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state = server_state["s"]
            state.requests.append(self.path)
            body = state.routes.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server_state["s"] = ReleaseServer(f"http://127.0.0.1:{httpd.server_address[1]}")
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server_state["s"]
    finally:
        httpd.shutdown()
        httpd.server_close()


def zip_of(files: Mapping[str, str | bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
