"""The match plan: compiled rules flattened into tables, ready for the runtime and the cache.

Every distinct atom gets a number (one ``Image|endswith \\cmd.exe`` shared by 300 rules is
tested once per event); expressions become nested tuples over atom numbers, which pickle and
unpickle an order of magnitude faster than objects::

    node := atom number | True | False | ("&", (node, ...)) | ("|", (node, ...)) | ("!", node)

Per branch the plan also records its *guard*: atoms of which at least one must be true for the
branch to match, chosen so that they are cheap to find in bulk (string tests, which the runtime
evaluates for all rules at once per field). An event only meets the branches whose guard it
hits, plus the few branches without a guard (a condition like ``not filter`` or a regex-only
rule).
"""

from __future__ import annotations

from dataclasses import dataclass

from norrvakt.detect.ir import STRING_OPS, And, Atom, CompiledRule, Const, Expr, Not, Or, RuleInfo

Node = int | bool | tuple[str, object]
AtomRow = tuple[str | None, str, object]  # field, op, arg


@dataclass(frozen=True, slots=True)
class PlanBranch:
    rule: int  # index into Plan.rules
    node: Node
    keys: tuple[frozenset[str] | None, ...]  # per index field: required casefolded values
    guard: tuple[int, ...] | None  # None: no guard, always tested when the keys admit the event
    fields: tuple[str, ...]  # fields of the bulk-evaluated atoms in ``node``


@dataclass(frozen=True, slots=True)
class Plan:
    index_fields: tuple[str, ...]
    atoms: tuple[AtomRow, ...]
    rules: tuple[RuleInfo, ...]
    branches: tuple[PlanBranch, ...]


# Pseudo field name of keyword (field-less) substring tests: they are evaluated in bulk over
# all of an event's text, like the tests on a named field over its value.
KEYWORDS = "\x00keywords"


def is_bulk(atom: AtomRow) -> bool:
    """String tests on a named field, and keyword substring tests: evaluated for all rules at
    once, per field and event."""
    if atom[0] is None:
        return atom[1] in ("contains", "contains_cs")
    return atom[1] in STRING_OPS


def bulk_field(atom: AtomRow) -> str:
    return KEYWORDS if atom[0] is None else atom[0]


def make_plan(rules: list[CompiledRule], index_fields: tuple[str, ...]) -> Plan:
    atom_ids: dict[Atom, int] = {}
    atoms: list[AtomRow] = []

    def encode(expr: Expr) -> Node:
        if isinstance(expr, Atom):
            number = atom_ids.get(expr)
            if number is None:
                number = atom_ids[expr] = len(atoms)
                atoms.append((expr.field, expr.op, expr.arg))
            return number
        if isinstance(expr, And):
            return ("&", tuple(encode(i) for i in expr.items))
        if isinstance(expr, Or):
            return ("|", tuple(encode(i) for i in expr.items))
        if isinstance(expr, Not):
            return ("!", encode(expr.item))
        assert isinstance(expr, Const)
        return expr.value

    branches: list[PlanBranch] = []
    infos: list[RuleInfo] = []
    index_set = frozenset(index_fields)
    for number, rule in enumerate(rules):
        infos.append(rule.info)
        for branch in rule.branches:
            node = encode(branch.expr)
            guard = _guard(node, atoms, index_set)
            fields = sorted({bulk_field(atoms[a]) for a in _node_atoms(node) if is_bulk(atoms[a])})
            branches.append(
                PlanBranch(
                    number,
                    node,
                    branch.keys,
                    tuple(sorted(guard)) if guard is not None else None,
                    tuple(fields),
                )
            )
    return Plan(tuple(index_fields), tuple(atoms), tuple(infos), tuple(branches))


def _node_atoms(node: Node) -> list[int]:
    out: list[int] = []
    stack: list[Node] = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, bool):
            continue
        if isinstance(n, int):
            out.append(n)
        elif n[0] == "!":
            stack.append(n[1])  # type: ignore[arg-type]
        else:
            stack.extend(n[1])  # type: ignore[arg-type]
    return out


def _guard(node: Node, atoms: list[AtomRow], index_fields: frozenset[str]) -> frozenset[int] | None:
    """Atoms of which one must hold for ``node`` to hold; None when there is no such set that
    the runtime can find in bulk."""
    if isinstance(node, bool):
        return None if node else frozenset()
    if isinstance(node, int):
        atom = atoms[node]
        # Index fields are already checked by the rule index: a guard on them would admit every
        # event of the bucket and hide a more selective one.
        if is_bulk(atom) and atom[0] not in index_fields:
            return frozenset((node,))
        return None
    op, arg = node
    if op == "!":
        return None
    items: tuple[Node, ...] = arg  # type: ignore[assignment]
    if op == "|":
        union: set[int] = set()
        for item in items:
            g = _guard(item, atoms, index_fields)
            if g is None:
                return None
            union |= g
        return frozenset(union)
    best: frozenset[int] | None = None
    best_cost = 0.0
    for item in items:
        g = _guard(item, atoms, index_fields)
        if g is None:
            continue
        cost = sum(_cost(atoms[a]) for a in g)
        if best is None or cost < best_cost:
            best, best_cost = g, cost
    return best


def _cost(atom: AtomRow) -> float:
    """How often an atom is expected to hold: short literals and substring tests hit often."""
    arg = atom[2]
    length = len(arg) if isinstance(arg, str) else 4
    base = {"eq": 0.3, "eq_cs": 0.3, "prefix": 0.7, "suffix": 0.7}.get(atom[1], 1.0)
    return base * (1.0 + 16.0 / (length + 1))
