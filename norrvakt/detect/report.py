"""The load report: for every rule file and rule, whether it loaded and, if not, why.

Nothing is skipped silently: a file that is not YAML, a rule pySigma rejects, a modifier the
engine cannot evaluate, a correlation rule it cannot evaluate in bounded memory, a threat
intel list that cannot be read - each is one row with the place (``path:line``) and the
reason. Rules that loaded with a caveat (e.g. a log source with no mapping, so the rule is
tested against every event) carry it as a note.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from rich.table import Table


@dataclass(frozen=True, slots=True)
class RuleStatus:
    path: str
    line: int
    kind: str  # rule | correlation | filter | file | intel
    loaded: bool
    reason: str = ""  # why not loaded; for loaded rules, notes ("" = none)
    id: str = ""
    title: str = ""
    level: str = ""

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}" if self.line else self.path

    @property
    def state(self) -> str:
        if not self.loaded:
            return "not loaded"
        return "loaded (note)" if self.reason else "loaded"


@dataclass
class LoadReport:
    entries: list[RuleStatus] = field(default_factory=list)
    files: int = 0
    cached: bool = False  # compiled rules came from the on-disk cache
    seconds: float = 0.0
    pipeline: str = ""
    cache_note: str = ""  # why the cache was not used, when it could not be

    @property
    def rules(self) -> list[RuleStatus]:
        return [e for e in self.entries if e.kind != "file"]

    @property
    def loaded(self) -> list[RuleStatus]:
        return [e for e in self.entries if e.loaded and e.kind == "rule"]

    @property
    def correlations(self) -> list[RuleStatus]:
        """Correlation rules that loaded."""
        return [e for e in self.entries if e.loaded and e.kind == "correlation"]

    @property
    def intel(self) -> list[RuleStatus]:
        """Threat intel lists that loaded."""
        return [e for e in self.entries if e.loaded and e.kind == "intel"]

    @property
    def not_loaded(self) -> list[RuleStatus]:
        return [e for e in self.entries if not e.loaded]

    @property
    def noted(self) -> list[RuleStatus]:
        return [e for e in self.entries if e.loaded and e.reason]

    def summary(self) -> str:
        kinds = Counter(e.kind for e in self.not_loaded)
        problems = ", ".join(f"{n} {k}{'s' if n != 1 else ''}" for k, n in sorted(kinds.items()))
        source = "from cache" if self.cached else "compiled"
        extra = "".join(
            f", {len(rows)} {name}{'s' if len(rows) != 1 else ''}"
            for name, rows in (("correlation", self.correlations), ("intel list", self.intel))
            if rows
        )
        text = (
            f"{len(self.loaded)} rules{extra} loaded ({source}, {self.seconds:.2f} s) "
            f"from {self.files} files; "
            f"{len(self.not_loaded)} not loaded" + (f" ({problems})" if problems else "")
        )
        if self.noted:
            text += f"; {len(self.noted)} loaded with a note"
        if self.cache_note:
            text += f"; cache: {self.cache_note}"
        return text

    def reasons(self) -> Counter[str]:
        """Not-loaded reasons with the file-specific part cut off, counted (for summaries)."""
        return Counter(e.reason.split(":", 1)[0] for e in self.not_loaded)

    def table(self, only_problems: bool = False) -> Table:
        table = Table(title=self.summary(), title_justify="left", show_lines=False)
        table.add_column("state")
        table.add_column("level")
        table.add_column("id", overflow="fold")
        table.add_column("title", overflow="fold")
        table.add_column("where", overflow="fold")
        table.add_column("reason / note", overflow="fold")
        order = {"not loaded": 0, "loaded (note)": 1, "loaded": 2}
        for e in sorted(self.entries, key=lambda e: (order[e.state], e.path, e.line)):
            if only_problems and e.state == "loaded":
                continue
            style = {"not loaded": "red", "loaded (note)": "yellow"}.get(e.state, "")
            table.add_row(
                f"[{style}]{e.state}[/{style}]" if style else e.state,
                e.level,
                e.id,
                e.title,
                e.location,
                e.reason,
            )
        return table

    def to_dicts(self) -> list[dict[str, object]]:
        return [
            {
                "state": e.state,
                "kind": e.kind,
                "id": e.id,
                "title": e.title,
                "level": e.level,
                "path": e.path,
                "line": e.line,
                "reason": e.reason,
            }
            for e in self.entries
        ]
