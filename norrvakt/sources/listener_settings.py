"""What every network listener's config takes from its ``[[sources]]`` entry.

Each source type's ``_from_settings`` builds its frozen config from these plus its own fields::

    BeatsSourceConfig(**listener_fields(src, settings, own_port=BEATS_PORT))
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from norrvakt.sources.stream import StreamLimits

if TYPE_CHECKING:
    from norrvakt.config import Settings, SourceSettings

# SourceSettings.port's default (syslog's). A source type with a port of its own (Beats 5044,
# GELF 12201, ...) that is left at it listens on its own port instead: an operator who wrote
# no port means the protocol's usual one.
GENERAL_DEFAULT_PORT = 5514


def listen_port(src: SourceSettings, own_port: int | None) -> int:
    """The port a source listens on: its own protocol's when the settings left the default."""
    if own_port is not None and src.port == GENERAL_DEFAULT_PORT:
        return own_port
    return src.port


def listener_fields(
    src: SourceSettings, settings: Settings, *, own_port: int | None = None, tls: bool = True
) -> dict[str, Any]:
    """id, host, port, tenant mapping, message limit, time zone and connection limits; with
    ``tls`` also the protocol and the certificate paths (the node's self-signed pair under
    ``<data_dir>/tls`` unless the source names its own)."""
    fields: dict[str, Any] = {
        "id": src.id,
        "host": src.host,
        "port": listen_port(src, own_port),
        "tenant": src.tenant,
        "networks": dict(src.networks),
        "max_message_bytes": src.max_message_bytes,
        "timezone": src.timezone or settings.timezone,
        "limits": StreamLimits.from_settings(src),
    }
    if tls:
        tls_dir = settings.data_path / "tls"
        fields["protocol"] = src.protocol
        fields["tls_cert"] = Path(src.tls_cert) if src.tls_cert else tls_dir / "server.crt"
        fields["tls_key"] = Path(src.tls_key) if src.tls_key else tls_dir / "server.key"
    return fields
