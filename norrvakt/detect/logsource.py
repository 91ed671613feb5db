"""Log source mappings: where a Sigma rule's ``logsource`` is found in Norrvakt events.

The mappings are data (``norrvakt/detect/pipelines/*.yml``, format documented at the top of
``windows.yml`` and in docs/rules.md). A rule's ``(product, category, service)`` resolves to
one or more :class:`Variant` s: conditions on event fields (``Channel``, ``EventID``) plus
field renames for that variant. Resolution is fixed: category first (to a service and extra
conditions), then service (to channel conditions) - the order pySigma's sysmon and
windows-logsources pipelines are applied in, so the results agree with them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml


class PipelineError(ValueError):
    """A mapping file that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True, slots=True)
class Variant:
    """One place a log source is found: ``where`` field -> allowed values, ``rename`` rule field
    -> event field."""

    where: tuple[tuple[str, tuple[str, ...]], ...] = ()
    rename: tuple[tuple[str, str], ...] = ()
    service: str = ""


@dataclass(frozen=True, slots=True)
class Resolution:
    variants: tuple[Variant, ...]
    note: str = ""  # e.g. "logsource not mapped: tested against every event"


@dataclass(frozen=True)
class Pipeline:
    name: str
    index_fields: tuple[str, ...]
    categories: dict[str, dict[str, tuple[Variant, ...]]]  # product -> category -> variants
    services: dict[str, dict[str, Variant]]  # product -> service -> variant
    placeholders: dict[str, tuple[str, ...]]
    digest: str  # sha256 of the source text: part of the compiled-rules cache key
    source: str = ""
    # product -> where its rules are looked for when the rule names only the product, or a
    # category/service the mapping does not list (instead of every event)
    defaults: dict[str, Variant] = field(default_factory=dict)
    notes: dict[tuple[str, str, str], str] = field(default_factory=dict)  # (product, kind, name) -> note
    # (product, service) -> more variants of a service besides its own where (``variants:``)
    service_variants: dict[tuple[str, str], tuple[Variant, ...]] = field(default_factory=dict)
    # tenant -> placeholder name -> values: a tenant's own values for ``|expand``, over
    # ``placeholders`` (:mod:`norrvakt.detect.placeholders`); ``tenants``: every tenant, so that
    # the load report can name those a rule's placeholders leave without values
    tenant_placeholders: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    tenants: tuple[str, ...] = ()
    _memo: dict[tuple[str, str, str], Resolution] = field(default_factory=dict, compare=False, repr=False)

    def resolve(self, product: str | None, category: str | None, service: str | None) -> Resolution:
        key = (product or "", category or "", service or "")
        hit = self._memo.get(key)
        if hit is None:
            hit = self._memo[key] = self._resolve(*key)
        return hit

    def _resolve(self, product: str, category: str, service: str) -> Resolution:
        what = "/".join(p for p in (product, category, service) if p) or "(empty)"
        services = self.services.get(product, {})
        if category:
            variants = self.categories.get(product, {}).get(category)
            if variants is not None:
                if service:
                    chosen = tuple(v for v in variants if v.service == service)
                    if chosen:
                        variants = chosen
                note = self.notes.get((product, "category", category), "")
                return Resolution(tuple(_with_service(v, services) for v in variants), note)
        if service and service in services:
            more = self.service_variants.get((product, service), ())
            return Resolution((services[service], *more), self.notes.get((product, "service", service), ""))
        default = self.defaults.get(product)
        if default is not None:
            if not category and not service:
                return Resolution((default,))
            where = ", ".join(f"{n} {'/'.join(v)}" for n, v in default.where) or "any value"
            note = (
                f"logsource {what} is not mapped in pipeline {self.name!r}: "
                f"tested against {product} events ({where})"
            )
            return Resolution((default,), note)
        if not category and not service and product:
            note = f"logsource {what} names only a product: tested against every event"
        else:
            note = f"logsource {what} is not mapped in pipeline {self.name!r}: tested against every event"
        return Resolution((Variant(),), note)


def _with_service(variant: Variant, services: dict[str, Variant]) -> Variant:
    base = services.get(variant.service)
    if base is None:
        return variant
    where = dict(base.where)
    where.update(variant.where)
    return Variant(tuple(where.items()), variant.rename, variant.service)


# --- reading the YAML -----------------------------------------------------------------------


BUILTIN_PIPELINES = ("windows.yml", "linux.yml", "norrvakt.yml", "cloud.yml")


def load_pipeline(path: Path | None = None) -> Pipeline:
    """The mapping in ``path``, or the built-in mapping (``pipelines/windows.yml``,
    ``linux.yml``, ``norrvakt.yml`` and ``cloud.yml`` merged)."""
    if path is None:
        base = resources.files("norrvakt.detect").joinpath("pipelines")
        docs = [
            (base.joinpath(n).read_text("utf-8"), f"norrvakt/detect/pipelines/{n}") for n in BUILTIN_PIPELINES
        ]
        return merge_pipelines([parse_pipeline(t, w) for t, w in docs], "built-in")
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise PipelineError(f"{path}: cannot read the log source mapping: {exc}") from exc
    return parse_pipeline(text, str(path))


def merge_pipelines(parts: list[Pipeline], name: str) -> Pipeline:
    """One mapping from several files: products must not repeat; ``index_fields`` are taken
    from the files that name them, which must agree."""
    index: tuple[str, ...] = ()
    out = Pipeline(name, (), {}, {}, {}, "", ", ".join(p.source for p in parts))
    digest = hashlib.sha256()
    for part in parts:
        if part.index_fields:
            if index and part.index_fields != index:
                raise PipelineError(
                    f"{part.source}: index_fields {list(part.index_fields)} differ from {list(index)}"
                )
            index = part.index_fields
        for product in (*part.categories, *part.services):
            if product in out.categories or product in out.services:
                raise PipelineError(f"{part.source}: product {product!r} is already mapped in another file")
        out.categories.update(part.categories)
        out.services.update(part.services)
        out.defaults.update(part.defaults)
        out.notes.update(part.notes)
        out.service_variants.update(part.service_variants)
        for key, values in part.placeholders.items():
            if key in out.placeholders:
                raise PipelineError(f"{part.source}: placeholder {key!r} is already defined in another file")
            out.placeholders[key] = values
        digest.update(part.digest.encode())
    return Pipeline(
        name,
        index,
        out.categories,
        out.services,
        out.placeholders,
        digest.hexdigest(),
        out.source,
        out.defaults,
        out.notes,
        out.service_variants,
    )


def parse_pipeline(text: str, where: str) -> Pipeline:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"{where}:{mark.line + 1}:{mark.column + 1}" if mark is not None else where
        raise PipelineError(f"{at}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(doc, dict):
        raise PipelineError(f"{where}: expected a mapping with name, index_fields, products")
    index_fields = doc.get("index_fields", [])
    if not isinstance(index_fields, list) or not all(isinstance(f, str) for f in index_fields):
        raise PipelineError(f"{where}: index_fields must be a list of field names")
    categories: dict[str, dict[str, tuple[Variant, ...]]] = {}
    services: dict[str, dict[str, Variant]] = {}
    defaults: dict[str, Variant] = {}
    notes: dict[tuple[str, str, str], str] = {}
    service_variants: dict[tuple[str, str], tuple[Variant, ...]] = {}
    for product, table in _mapping(doc.get("products", {}), f"{where}: products").items():
        table = _mapping(table, f"{where}: products.{product}")
        unknown = set(table) - {"categories", "services", "default"}
        if unknown:
            raise PipelineError(
                f"{where}: products.{product}: unknown keys {sorted(unknown)} "
                "(allowed: categories, services, default)"
            )
        services[product] = {}
        for name, cond in _mapping(table.get("services", {}), f"{where}: {product}.services").items():
            at = f"{where}: products.{product}.services.{name}"
            more = cond.get("variants") if isinstance(cond, dict) and "where" in cond else None
            cond, note = _noted(cond, at)
            base = services[product][name] = Variant(_where(cond, at), (), name)
            if note:
                notes[(product, "service", name)] = note
            if more is not None:
                service_variants[(product, name)] = _more_variants(more, at, base)
        if "default" in table:
            at = f"{where}: products.{product}.default"
            cond, _ = _noted(table["default"], at)
            defaults[product] = Variant(_where(cond, at))
        cats: dict[str, tuple[Variant, ...]] = {}
        for name, entries in _mapping(table.get("categories", {}), f"{where}: {product}.categories").items():
            at = f"{where}: products.{product}.categories.{name}"
            if isinstance(entries, dict):  # {variants: [...], note: "..."}
                unknown = set(entries) - {"variants", "note"}
                if unknown:
                    raise PipelineError(f"{at}: unknown keys {sorted(unknown)} (allowed: variants, note)")
                if entries.get("note"):
                    notes[(product, "category", name)] = str(entries["note"])
                entries = entries.get("variants")
            if not isinstance(entries, list) or not entries:
                raise PipelineError(f"{at}: expected a non-empty list of variants")
            cats[name] = tuple(_variant(e, f"{at}[{i}]", services[product]) for i, e in enumerate(entries))
        categories[product] = cats
    placeholders = {
        name: tuple(str(v) for v in (values if isinstance(values, list) else [values]))
        for name, values in _mapping(doc.get("placeholders") or {}, f"{where}: placeholders").items()
    }
    return Pipeline(
        name=str(doc.get("name", where)),
        index_fields=tuple(index_fields),
        categories=categories,
        services=services,
        placeholders=placeholders,
        digest=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        source=where,
        defaults=defaults,
        notes=notes,
        service_variants=service_variants,
    )


def _noted(entry: Any, at: str) -> tuple[Any, str]:
    """``{where: {...}, note: "..."}`` -> (the where part, the note); a plain map is all where."""
    if isinstance(entry, dict) and "where" in entry:
        unknown = set(entry) - {"where", "note", "variants"}
        if unknown:
            raise PipelineError(f"{at}: unknown keys {sorted(unknown)} (allowed: where, note, variants)")
        return entry["where"], str(entry.get("note") or "")
    return entry, ""


def _mapping(value: Any, at: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PipelineError(f"{at}: expected a mapping, got {type(value).__name__}")
    return {str(k): v for k, v in value.items()}


def _where(cond: Any, at: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    out = []
    for name, values in _mapping(cond, at).items():
        items = values if isinstance(values, list) else [values]
        if not items or any(isinstance(v, (dict, list)) or v is None for v in items):
            raise PipelineError(f"{at}.{name}: expected a value or a list of values")
        out.append((name, tuple(str(v) for v in items)))
    return tuple(out)


def _more_variants(entries: Any, at: str, base: Variant) -> tuple[Variant, ...]:
    """A service's ``variants``: each adds its own ``where`` to the service's and renames rule
    fields, so a rule of the service is also tested as if its fields had those names."""
    if not isinstance(entries, list) or not entries:
        raise PipelineError(f"{at}.variants: expected a non-empty list of variants")
    out = []
    for i, entry in enumerate(entries):
        v = _variant(entry, f"{at}.variants[{i}]", {})
        out.append(Variant((*base.where, *v.where), v.rename, base.service))
    return tuple(out)


def _variant(entry: Any, at: str, services: dict[str, Variant]) -> Variant:
    entry = _mapping(entry, at)
    unknown = set(entry) - {"service", "where", "rename"}
    if unknown:
        raise PipelineError(f"{at}: unknown keys {sorted(unknown)} (allowed: service, where, rename)")
    service = str(entry.get("service", ""))
    if service and service not in services:
        raise PipelineError(f"{at}: service {service!r} is not defined under services")
    rename = _mapping(entry.get("rename", {}), f"{at}.rename")
    return Variant(
        _where(entry.get("where", {}), f"{at}.where"),
        tuple((str(k), str(v)) for k, v in rename.items()),
        service,
    )
