"""Where the node is reached: the URL shown in the banner, in links of notifications and as
the OIDC redirect."""

from __future__ import annotations

from norrvakt.config import Settings


def public_url(settings: Settings) -> str:
    if settings.server.public_url:
        return settings.server.public_url
    host = settings.server.host
    shown = "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host
    return f"http://{shown}:{settings.server.port}"
