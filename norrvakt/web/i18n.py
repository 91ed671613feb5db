"""Swedish and English text for the console. Swedish is the default for municipality users.

Texts live in ``web/locales/<lang>.yml`` as flat ``key: text``; a test checks that both
languages have the same keys, so no page shows a bare key.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

LOCALES = Path(__file__).with_name("locales")
LANGUAGES = ("sv", "en")
DEFAULT = "sv"


@cache
def catalog(lang: str) -> dict[str, str]:
    path = LOCALES / f"{lang if lang in LANGUAGES else DEFAULT}.yml"
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {str(k): str(v) for k, v in data.items()}


def translate(lang: str, key: str) -> str:
    return catalog(lang).get(key) or catalog(DEFAULT).get(key) or key


def pick_language(cookie: str | None, accept_language: str | None) -> str:
    if cookie in LANGUAGES:
        return str(cookie)
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return DEFAULT
