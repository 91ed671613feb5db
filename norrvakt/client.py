"""Talking to a running server from the CLI (the server owns the data directory)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from norrvakt.node.runtime import CLI_TOKEN_FILE, read_server_file


class ApiError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"server answered {status}: {detail}")
        self.status = status
        self.detail = detail


def answer(resp: httpx.Response) -> Any:
    """The JSON body of an API answer, or :class:`ApiError` with the server's ``detail``."""
    if resp.status_code >= 400:
        try:
            detail = resp.json().get("detail", resp.text)
        except ValueError:
            detail = resp.text
        raise ApiError(resp.status_code, str(detail))
    return resp.json()


class ServerClient:
    def __init__(self, url: str, token: str, timeout: float = 120.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout
        )

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> ServerClient | None:
        info = read_server_file(data_dir)
        token_path = data_dir / CLI_TOKEN_FILE
        if info is None or not token_path.exists():
            return None
        return cls(str(info["url"]), token_path.read_text().strip())

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        return answer(self._http.request(method, path, **kwargs))

    def stream(self, method: str, path: str, **kwargs: Any) -> Any:
        """``with client.stream(...) as resp:`` — a response read as it arrives (exports)."""
        return self._http.stream(method, path, **kwargs)

    def close(self) -> None:
        self._http.close()
