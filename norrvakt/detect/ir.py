"""The compiled form of a Sigma rule: a boolean expression over atomic tests on event fields.

This is what :mod:`norrvakt.detect.sigma` makes of a pySigma rule, what the on-disk cache
stores (plain frozen dataclasses, pickled), and what :mod:`norrvakt.detect.runtime` turns into
matchers. It knows nothing about pySigma or about events.

An :class:`Atom` is one test on one field (``field`` None = a keyword test on every value)::

    Atom("Image", "suffix", "\\\\rundll32.exe")          # Image|endswith (casefolded)
    Atom("CommandLine", "glob", "^.*-enc.*\\\\ .*$")    # wildcards inside: a regex, fullmatch
    Atom("EventID", "eq", "4688")
    Atom("DestinationIp", "cidr", "10.0.0.0/8")
    Atom(None, "contains", "mimikatz")                  # a keyword

String tests compare the *casefolded* value with a casefolded literal (Sigma is
case-insensitive, also for non-ASCII text); the ``*_cs`` variants (``cased`` modifier) compare
the value as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Bumped whenever the compiled form or the meaning of an op changes: cached rule sets made by
# another version are recompiled.
IR_VERSION = 4  # 3: "re" and "glob" mean RE2 (norrvakt.detect.regex), not Python re; 4: "tenant"

# op -> what ``arg`` holds
CI_STRING_OPS = frozenset({"eq", "prefix", "suffix", "contains", "glob"})  # arg: casefolded str
CS_STRING_OPS = frozenset({"eq_cs", "prefix_cs", "suffix_cs", "contains_cs", "glob_cs"})  # arg: str
STRING_OPS = CI_STRING_OPS | CS_STRING_OPS
OTHER_OPS = frozenset(
    {
        "re",  # arg: (pattern, flags) - Python re flag values; RE2 search, case-sensitive unless re.I
        "cidr",  # arg: network in CIDR notation
        "cmp",  # arg: (operator "lt"|"lte"|"gt"|"gte"|"neq", number)
        "exists",  # arg: bool - whether the field must be present
        "null",  # arg: None - the field is absent or empty
        "fieldref",  # arg: (other field, "eq"|"prefix"|"suffix"|"contains")
        "time",  # arg: (part "minute"|"hour"|"day"|"week"|"month"|"year", number)
        "tenant",  # arg: tuple of tenant ids - the event's tenant is one (field: TENANT)
    }
)
# The pseudo field of "tenant" atoms: the tenant of the event, never a field of its own
# (|expand placeholders filled per tenant, norrvakt.detect.placeholders).
TENANT = "\x00tenant"
ALL_OPS = STRING_OPS | OTHER_OPS


@dataclass(frozen=True, slots=True)
class Atom:
    field: str | None
    op: str
    arg: object = None

    def __str__(self) -> str:
        name = self.field if self.field is not None else "<keyword>"
        return f"{name}|{self.op} {self.arg!r}"


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Expr


@dataclass(frozen=True, slots=True)
class Const:
    value: bool


Expr = Atom | And | Or | Not | Const

TRUE = Const(True)
FALSE = Const(False)


def all_of(items: list[Expr]) -> Expr:
    """AND of ``items``, flattened, with constants folded."""
    out: list[Expr] = []
    for item in items:
        if isinstance(item, Const):
            if not item.value:
                return FALSE
            continue
        out.extend(item.items if isinstance(item, And) else (item,))
    if not out:
        return TRUE
    return out[0] if len(out) == 1 else And(tuple(out))


def any_of(items: list[Expr]) -> Expr:
    """OR of ``items``, flattened, with constants folded and duplicates dropped."""
    out: list[Expr] = []
    seen: set[Expr] = set()
    for item in items:
        if isinstance(item, Const):
            if item.value:
                return TRUE
            continue
        for sub in item.items if isinstance(item, Or) else (item,):
            if sub not in seen:
                seen.add(sub)
                out.append(sub)
    if not out:
        return FALSE
    return out[0] if len(out) == 1 else Or(tuple(out))


def negate(item: Expr) -> Expr:
    if isinstance(item, Const):
        return Const(not item.value)
    if isinstance(item, Not):
        return item.item
    return Not(item)


def atoms_of(expr: Expr) -> list[Atom]:
    """Every atom in ``expr``, in order, with repeats."""
    out: list[Atom] = []
    stack: list[Expr] = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, Atom):
            out.append(node)
        elif isinstance(node, (And, Or)):
            stack.extend(reversed(node.items))
        elif isinstance(node, Not):
            stack.append(node.item)
    return out


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """What an alert or a hunt result says about the rule that fired."""

    id: str
    title: str
    level: str  # informational | low | medium | high | critical | "" when the rule has none
    tags: tuple[str, ...] = ()
    status: str = ""
    description: str = ""
    author: str = ""
    falsepositives: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    path: str = ""
    line: int = 0
    logsource: tuple[str, str, str] = ("", "", "")  # product, category, service
    name: str = ""  # the rule's ``name:`` (what correlation rules may reference it by)
    custom: tuple[tuple[str, str], ...] = ()  # the ``norrvakt:`` attribute, flattened (key, value)

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}" if self.line else self.path


@dataclass(frozen=True, slots=True)
class Branch:
    """One way a rule can match: a logsource variant ANDed with the rule's detection.

    ``keys`` are the index constraints: for each index field, the casefolded values the
    field must have for the branch to possibly match (None = any value, also absent).
    """

    expr: Expr
    keys: tuple[frozenset[str] | None, ...]


@dataclass(frozen=True, slots=True)
class CompiledRule:
    info: RuleInfo
    branches: tuple[Branch, ...]
    notes: tuple[str, ...] = field(default=())
