"""What every command group of the CLI shares: the settings of the invocation, the API call
(the running server's, or the same API served in-process on the data directory when none runs),
and how times and JSON are printed."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from typing import Any

import click
from rich.console import Console

from norrvakt.config import ConfigError, Settings, load_settings

err = Console(stderr=True)


def settings_of(ctx: click.Context, *, existing_data_dir: bool = True) -> Settings:
    """The settings; exits 2 when the data directory does not exist, unless the command makes
    it (``existing_data_dir=False``: `serve`, `import`) or needs none (`sources`). Opening a
    missing directory would create a stray one (a mistyped --data-dir) or end in a traceback."""
    obj: dict[str, Any] = ctx.obj
    if "settings" not in obj:
        overrides: dict[str, Any] = {}
        if obj.get("data_dir"):
            overrides["data_dir"] = obj["data_dir"]
        try:
            obj["settings"] = load_settings(obj.get("config"), overrides)
        except ConfigError as exc:
            err.print(f"[red]{exc}[/red]")
            sys.exit(2)
    settings: Settings = obj["settings"]
    if existing_data_dir and not settings.data_path.is_dir():
        from rich.markup import escape

        err.print(
            f"[red]no Norrvakt data directory at {escape(str(settings.data_path))} "
            "(run `norrvakt serve` first or pass --data-dir)[/red]"
        )
        sys.exit(2)
    return settings


def call_api(
    ctx: click.Context,
    method: str,
    path: str,
    body: Any = None,
    *,
    params: dict[str, Any] | None = None,
    content: bytes | None = None,
) -> Any:
    """Call the API: the running server's, or in-process on the data directory when none runs.
    ``content`` is sent as the raw body instead of ``body`` as JSON."""
    from norrvakt.client import ApiError, ServerClient

    settings = settings_of(ctx)
    params = {k: v for k, v in (params or {}).items() if v is not None}
    client = ServerClient.for_data_dir(settings.data_path)
    try:
        payload: dict[str, Any] = {"content": content} if content is not None else {"json": body}
        if client is not None:
            return client.request(method, path, params=params, **payload)
        return asyncio.run(_local(settings, method, path, payload, params))
    except ApiError as exc:
        err.print(f"[red]{exc.detail}[/red]")
        sys.exit(2)


def call_api_bytes(ctx: click.Context, path: str, params: dict[str, Any] | None = None) -> bytes:
    """GET ``path`` and return the body as it is (a PDF, an HTML page): the running server's, or
    in-process on the data directory when none runs. An error answer exits 2 with its detail."""
    import httpx

    from norrvakt.client import ApiError, answer
    from norrvakt.node.runtime import CLI_TOKEN_FILE, read_server_file

    settings = settings_of(ctx)
    params = {k: v for k, v in (params or {}).items() if v is not None}
    info = read_server_file(settings.data_path)
    token_path = settings.data_path / CLI_TOKEN_FILE
    try:
        if info is not None and token_path.exists():
            resp = httpx.get(
                str(info["url"]).rstrip("/") + path,
                params=params,
                headers={"Authorization": f"Bearer {token_path.read_text().strip()}"},
                timeout=300,
            )
            if resp.status_code >= 400:
                answer(resp)
            return resp.content
        content: bytes = asyncio.run(_local(settings, "GET", path, {}, params, raw=True))
        return content
    except ApiError as exc:
        err.print(f"[red]{exc.detail}[/red]")
        sys.exit(2)


async def _local(
    settings: Any,
    method: str,
    path: str,
    payload: dict[str, Any],
    params: dict[str, Any],
    *,
    raw: bool = False,
) -> Any:
    import httpx

    from norrvakt.client import answer
    from norrvakt.node.runtime import open_runtime
    from norrvakt.state.accounts import Principal
    from norrvakt.web.app import create_app
    from norrvakt.web.auth import current_principal

    logging.getLogger("httpx").setLevel(logging.WARNING)  # in-process requests are no news
    rt = open_runtime(settings)
    await rt.start(with_sources=False)
    try:
        app = create_app(rt)
        local = Principal(username=f"local:{os.environ.get('USER', 'unknown')}", role="admin", tenants=None)
        app.dependency_overrides[current_principal] = lambda: local
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://local") as client:
            resp = await client.request(method, path, params=params, **payload)
        if raw and resp.status_code < 400:
            return resp.content
        return answer(resp)
    finally:
        await rt.close()


def when(us: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(us / 1e6)) if us else "–"


def print_json(doc: Any) -> None:
    click.echo(json.dumps(doc, ensure_ascii=False, indent=2))
