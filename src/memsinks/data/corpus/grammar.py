"""A small engine for probabilistic template grammars with exact log-probabilities.

A grammar is a set of rules. Each rule has weighted alternatives; an alternative is a
template mixing literal tokens, references to sub-rules (``<rule>``) and variable slots
(``{var}`` or ``{var.form}``). Variables are drawn lazily at their first slot and keep
their value for the rest of the document.

Exactness. We want ``p(token sequence)`` to equal ``p(derivation)``, i.e. every token
sequence has exactly one derivation, and the end of a document is implied by its tokens.
The constructor guarantees this by checking, after left-factoring common prefixes:

* no alternative is empty, and every rule can finish (is productive);
* LL(1): the FIRST token sets of the alternatives of each rule are pairwise disjoint
  (a slot contributes the first tokens of *all* values of its form: conservative);
* a slot that may draw its variable uses an *identifying* form (the value's tokens are
  distinct and prefix-free over all values), so the drawn value is read off the text;
  other forms (pronouns, articles, ...) are only allowed where the variable is provably
  bound already.

Then a deterministic left-to-right parser recovers the derivation from the tokens (see
:meth:`Grammar.logprob`), and because every decision is made by looking at tokens that
the decision itself consumes, no document is a proper prefix of another: an
end-of-document token has probability 1.

Weights are positive integers and draws use ``getrandbits`` with rejection, so samples
follow the stated probabilities exactly (no floating-point rounding in sampling).
"""

from __future__ import annotations

import math
import random
import re
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "PUNCTUATION",
    "Grammar",
    "GrammarError",
    "Value",
    "Variable",
    "alts",
    "render",
    "split_text",
]

PUNCTUATION = frozenset('.,!?";:')
"""Single-character punctuation tokens. All other tokens are ASCII letters and digits."""

_NO_SPACE_BEFORE = frozenset(".,!?;:")
_LEXEME = re.compile(
    r"""<(?P<ref>[A-Za-z_]\w*)>
      | \{(?P<var>[A-Za-z_]\w*)(?:\.(?P<form>[A-Za-z_]\w*))?\}
      | (?P<word>[A-Za-z0-9]+)
      | (?P<punct>[.,!?";:])
      | (?P<space>\s+)
      | (?P<bad>.)""",
    re.VERBOSE,
)


class GrammarError(ValueError):
    """The grammar is malformed or could be ambiguous."""


@dataclass(frozen=True)
class Value:
    """One value of a variable: its primary text plus named alternative forms.

    E.g. ``Value("Mia", {"he": "she", "his": "her"})``; ``{hero.he}`` then emits "she".
    """

    text: str
    forms: Mapping[str, str] = field(default_factory=dict, hash=False)
    weight: int = 1


@dataclass(frozen=True)
class Variable:
    """A story variable. Variables sharing a ``pool`` must have identical values and
    never take the same value within one document (e.g. hero and friend)."""

    name: str
    values: tuple[Value, ...]
    pool: str | None = None

    def __init__(self, name: str, values: Sequence[Value | str], pool: str | None = None):
        vals = tuple(v if isinstance(v, Value) else Value(v) for v in values)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "values", vals)
        object.__setattr__(self, "pool", pool)


# --- template symbols (construction time only) -----------------------------------------


@dataclass(frozen=True)
class _Lit:
    token: str


@dataclass(frozen=True)
class _Ref:
    rule: str


@dataclass(frozen=True)
class _Slot:
    var: str
    form: str  # "" = primary text


_Symbol = _Lit | _Ref | _Slot
_Alt = tuple[int, tuple[_Symbol, ...]]


def split_text(text: str) -> tuple[str, ...]:
    """Split plain text (no rule references or slots) into tokens."""
    symbols = _lex(text, allow_refs=False)
    return tuple(s.token for s in symbols if isinstance(s, _Lit))


def _lex(template: str, allow_refs: bool = True) -> tuple[_Symbol, ...]:
    out: list[_Symbol] = []
    for m in _LEXEME.finditer(template):
        kind = m.lastgroup
        if kind == "space":
            continue
        if kind == "bad":
            raise GrammarError(f"invalid character {m.group()!r} in {template!r}")
        if kind in ("word", "punct"):
            out.append(_Lit(m.group()))
        elif not allow_refs:
            raise GrammarError(f"references are not allowed in values: {template!r}")
        elif kind == "ref":
            out.append(_Ref(m.group("ref")))
        else:
            out.append(_Slot(m.group("var"), m.group("form") or ""))
    return tuple(out)


def _is_identifying(tuples: Sequence[tuple[str, ...]]) -> bool:
    """True if the token tuples are distinct and none is a prefix of another."""
    ordered = sorted(tuples)
    return all(b[: len(a)] != a for a, b in zip(ordered, ordered[1:], strict=False))


def _show(symbols: Sequence[_Symbol]) -> str:
    parts = []
    for s in symbols:
        if isinstance(s, _Lit):
            parts.append(s.token)
        elif isinstance(s, _Ref):
            parts.append(f"<{s.rule}>")
        else:
            parts.append("{" + s.var + (f".{s.form}" if s.form else "") + "}")
    return " ".join(parts)


# --- compiled variables -------------------------------------------------------------------


@dataclass
class _CVar:
    name: str
    weights: list[int]
    total: int
    forms: dict[str, list[tuple[str, ...]]]  # form name -> tokens per value
    pool_names: list[str] = field(default_factory=list)  # the other pool members
    pool: list[int] = field(default_factory=list)  # their indices
    cum: list[int] = field(default_factory=list)
    logps: list[float] = field(default_factory=list)


_Bits = Callable[[int], int]  # random.Random.getrandbits

# Compiled op kinds: literal run, rule reference, variable slot.
_LIT, _REF, _SLOT = 0, 1, 2


class Grammar:
    """A compiled, checked probabilistic template grammar.

    ``rules`` maps a rule name to its alternatives, each a template string or a
    ``(weight, template)`` pair with a positive integer weight (default 1). A template
    is written as plain text: words and the marks in :data:`PUNCTUATION` are literal
    tokens, ``<name>`` expands rule ``name``, ``{var}`` emits a variable's value and
    ``{var.form}`` one of its forms. Raises :class:`GrammarError` if the grammar could
    be ambiguous (see the module docstring).
    """

    def __init__(
        self,
        rules: Mapping[str, Sequence[str | tuple[int, str]]],
        variables: Sequence[Variable],
        start: str,
    ) -> None:
        self.start = start
        self._vars = self._check_variables(variables)
        source = self._parse_rules(rules)
        self._check_references(source, start)
        self._check_binding(source, start)
        factored = self._left_factor(source)
        first = self._first_sets(factored)
        self._check_ll1(factored, first)
        self._compile(factored, first)

    # --- construction ------------------------------------------------------------------

    def _check_variables(self, variables: Sequence[Variable]) -> dict[str, _CVar]:
        out: dict[str, _CVar] = {}
        pools: dict[str, list[Variable]] = {}
        for var in variables:
            if var.name in out:
                raise GrammarError(f"duplicate variable {var.name!r}")
            if not var.values:
                raise GrammarError(f"variable {var.name!r} has no values")
            weights = [v.weight for v in var.values]
            if any(not isinstance(w, int) or w <= 0 for w in weights):
                raise GrammarError(f"variable {var.name!r}: weights must be positive ints")
            names = set(var.values[0].forms)
            if any(set(v.forms) != names for v in var.values):
                raise GrammarError(f"variable {var.name!r}: all values need the same forms")
            forms = {"": [split_text(v.text) for v in var.values]}
            for f in sorted(names):
                forms[f] = [split_text(v.forms[f]) for v in var.values]
            for f, toks in forms.items():
                if any(not t for t in toks):
                    raise GrammarError(f"variable {var.name!r}: empty text in form {f!r}")
            cum, acc = [], 0
            for w in weights:
                acc += w
                cum.append(acc)
            logps = [math.log(w / acc) for w in weights]
            out[var.name] = _CVar(var.name, weights, acc, forms, cum=cum, logps=logps)
            if var.pool is not None:
                pools.setdefault(var.pool, []).append(var)
        for pool, members in pools.items():
            if any(m.values != members[0].values for m in members):
                raise GrammarError(f"pool {pool!r}: members must have identical values")
            if len(members[0].values) < len(members):
                raise GrammarError(f"pool {pool!r}: fewer values than variables")
            for m in members:
                out[m.name].pool_names = [o.name for o in members if o is not m]
        return out

    def _parse_rules(
        self, rules: Mapping[str, Sequence[str | tuple[int, str]]]
    ) -> dict[str, list[_Alt]]:
        source: dict[str, list[_Alt]] = {}
        for name, alts in rules.items():
            if not alts:
                raise GrammarError(f"rule {name!r} has no alternatives")
            parsed: list[_Alt] = []
            for alt in alts:
                weight, template = (1, alt) if isinstance(alt, str) else alt
                if not isinstance(weight, int) or weight <= 0:
                    raise GrammarError(f"rule {name!r}: weights must be positive ints")
                symbols = _lex(template)
                if not symbols:
                    raise GrammarError(f"rule {name!r}: empty alternatives are not allowed")
                for s in symbols:
                    if isinstance(s, _Slot):
                        var = self._vars.get(s.var)
                        if var is None:
                            raise GrammarError(f"rule {name!r}: unknown variable {s.var!r}")
                        if s.form not in var.forms:
                            raise GrammarError(
                                f"rule {name!r}: variable {s.var!r} has no form {s.form!r}"
                            )
                parsed.append((weight, symbols))
            source[name] = parsed
        return source

    @staticmethod
    def _check_references(source: dict[str, list[_Alt]], start: str) -> None:
        if start not in source:
            raise GrammarError(f"start rule {start!r} is not defined")
        for name, alts in source.items():
            for _, symbols in alts:
                for s in symbols:
                    if isinstance(s, _Ref) and s.rule not in source:
                        raise GrammarError(f"rule {name!r} refers to undefined <{s.rule}>")
        reached, todo = {start}, [start]
        while todo:
            for _, symbols in source[todo.pop()]:
                for s in symbols:
                    if isinstance(s, _Ref) and s.rule not in reached:
                        reached.add(s.rule)
                        todo.append(s.rule)
        if unused := sorted(set(source) - reached):
            raise GrammarError(f"unreachable rules: {unused}")
        productive: set[str] = set()
        changed = True
        while changed:
            changed = False
            for name, alts in source.items():
                if name not in productive and any(
                    all(not isinstance(s, _Ref) or s.rule in productive for s in symbols)
                    for _, symbols in alts
                ):
                    productive.add(name)
                    changed = True
        if stuck := sorted(set(source) - productive):
            raise GrammarError(f"rules that can never finish: {stuck}")

    def _check_binding(self, source: dict[str, list[_Alt]], start: str) -> None:
        """Non-identifying forms may only appear where their variable is surely bound."""
        everything = frozenset(self._vars)
        must = dict.fromkeys(source, everything)  # vars bound by every derivation of a rule

        def binds(symbols: Sequence[_Symbol]) -> frozenset[str]:
            out: set[str] = set()
            for s in symbols:
                if isinstance(s, _Slot):
                    out.add(s.var)
                elif isinstance(s, _Ref):
                    out |= must[s.rule]
            return frozenset(out)

        changed = True
        while changed:
            changed = False
            for name, alts in source.items():
                new = frozenset.intersection(*(binds(sym) for _, sym in alts))
                if new != must[name]:
                    must[name], changed = new, True

        entry = dict.fromkeys(source, everything)  # vars bound whenever a rule is entered
        entry[start] = frozenset()
        changed = True
        while changed:
            changed = False
            for name, alts in source.items():
                for _, symbols in alts:
                    for i, s in enumerate(symbols):
                        if isinstance(s, _Ref) and s.rule != start:
                            new = entry[s.rule] & (entry[name] | binds(symbols[:i]))
                            if new != entry[s.rule]:
                                entry[s.rule], changed = new, True

        for name, alts in source.items():
            for _, symbols in alts:
                for i, s in enumerate(symbols):
                    if not isinstance(s, _Slot):
                        continue
                    if _is_identifying(self._vars[s.var].forms[s.form]):
                        continue
                    if s.var not in entry[name] | binds(symbols[:i]):
                        raise GrammarError(
                            f"rule {name!r}: {_show([s])} in {_show(symbols)!r} may come "
                            f"before {s.var!r} is bound, and that form does not identify "
                            "the value"
                        )

    @staticmethod
    def _left_factor(source: dict[str, list[_Alt]]) -> dict[str, list[_Alt]]:
        """Merge alternatives sharing a first symbol into a new sub-rule.

        ``R -> a X | a Y`` becomes ``R -> a R~1 ; R~1 -> X | Y`` with the group's summed
        weight; the probability of every derivation is unchanged.
        """
        out: dict[str, list[_Alt]] = {}
        todo = list(source.items())
        while todo:
            name, alts = todo.pop()
            groups: dict[_Symbol, list[_Alt]] = {}
            for alt in alts:
                groups.setdefault(alt[1][0], []).append(alt)
            new_alts: list[_Alt] = []
            for k, members in enumerate(groups.values()):
                if len(members) == 1:
                    new_alts.append(members[0])
                    continue
                prefix = members[0][1]
                for _, symbols in members[1:]:
                    n = 0
                    while n < min(len(prefix), len(symbols)) and prefix[n] == symbols[n]:
                        n += 1
                    prefix = prefix[:n]
                if any(len(symbols) == len(prefix) for _, symbols in members):
                    raise GrammarError(
                        f"rule {name.split('~')[0]!r}: alternative "
                        f"{_show(prefix)!r} is a prefix or duplicate of another"
                    )
                sub = f"{name}~{k}"
                todo.append((sub, [(w, symbols[len(prefix) :]) for w, symbols in members]))
                new_alts.append((sum(w for w, _ in members), (*prefix, _Ref(sub))))
            out[name] = new_alts
        return out

    def _first_of(self, s: _Symbol, first: dict[str, frozenset[str]]) -> frozenset[str]:
        if isinstance(s, _Lit):
            return frozenset((s.token,))
        if isinstance(s, _Ref):
            return first[s.rule]
        return frozenset(t[0] for t in self._vars[s.var].forms[s.form])

    def _first_sets(self, rules: dict[str, list[_Alt]]) -> dict[str, frozenset[str]]:
        first: dict[str, frozenset[str]] = dict.fromkeys(rules, frozenset())
        changed = True
        while changed:
            changed = False
            for name, alts in rules.items():
                new = frozenset().union(*(self._first_of(sym[0], first) for _, sym in alts))
                if new != first[name]:
                    first[name], changed = new, True
        return first

    def _check_ll1(self, rules: dict[str, list[_Alt]], first: dict[str, frozenset[str]]) -> None:
        for name, alts in rules.items():
            seen: dict[str, tuple[_Symbol, ...]] = {}
            for _, symbols in alts:
                for tok in self._first_of(symbols[0], first):
                    if tok in seen:
                        raise GrammarError(
                            f"rule {name.split('~')[0]!r} is not LL(1): alternatives "
                            f"{_show(seen[tok])!r} and {_show(symbols)!r} can both start "
                            f"with {tok!r}"
                        )
                    seen[tok] = symbols

    def _compile(self, rules: dict[str, list[_Alt]], first: dict[str, frozenset[str]]) -> None:
        names = list(rules)
        rindex = {n: i for i, n in enumerate(names)}
        vnames = list(self._vars)
        vindex = {n: i for i, n in enumerate(vnames)}
        self._cvars = [self._vars[n] for n in vnames]
        for v in self._cvars:
            v.pool = [vindex[o] for o in v.pool_names]
        self._form_index = [{f: j for j, f in enumerate(v.forms)} for v in self._cvars]
        # tokens[var][form][value]
        self._vtokens = [list(v.forms.values()) for v in self._cvars]
        # first token -> candidate values, per var and form (for parsing)
        self._vfirst: list[list[dict[str, list[int]]]] = []
        for v in self._cvars:
            per_form = []
            for toks in v.forms.values():
                d: dict[str, list[int]] = {}
                for i, t in enumerate(toks):
                    d.setdefault(t[0], []).append(i)
                per_form.append(d)
            self._vfirst.append(per_form)

        self._rule_names = names
        self._crules = []
        self._select: list[dict[str, int]] = []  # first token -> alternative index
        vocab: set[str] = set()
        for name in names:
            alts = rules[name]
            total = sum(w for w, _ in alts)
            cum, acc = [], 0
            for w, _ in alts:
                acc += w
                cum.append(acc)
            compiled = []
            select: dict[str, int] = {}
            for i, (_, symbols) in enumerate(alts):
                for tok in self._first_of(symbols[0], first):
                    select[tok] = i
                ops: list[tuple[int, object, int]] = []
                for s in symbols:
                    if isinstance(s, _Lit):
                        vocab.add(s.token)
                        if ops and ops[-1][0] == _LIT:
                            ops[-1] = (_LIT, (*ops[-1][1], s.token), 0)  # type: ignore[misc]
                        else:
                            ops.append((_LIT, (s.token,), 0))
                    elif isinstance(s, _Ref):
                        ops.append((_REF, rindex[s.rule], 0))
                    else:
                        vi = vindex[s.var]
                        for t in self._cvars[vi].forms[s.form]:
                            vocab.update(t)
                        ops.append((_SLOT, vi, self._form_index[vi][s.form]))
                compiled.append(tuple(ops))
            logps = tuple(math.log(w / total) for w, _ in alts)
            self._crules.append((tuple(compiled), tuple(cum), total, total.bit_length(), logps))
            self._select.append(select)
        self._start = rindex[self.start]
        self._vocab = frozenset(vocab)
        self._vbits = [v.total.bit_length() for v in self._cvars]

    # --- public API --------------------------------------------------------------------

    @property
    def vocabulary(self) -> frozenset[str]:
        """Every token the grammar can emit (a superset where forms are unreachable)."""
        return self._vocab

    def sample(self, rng: random.Random) -> tuple[tuple[str, ...], float]:
        """Sample a document; return its tokens and exact natural-log probability."""
        out: list[str] = []
        bound: list[int | None] = [None] * len(self._cvars)
        lp = self._sample_rule(self._start, rng.getrandbits, out, bound)
        return tuple(out), lp

    def logprob(self, tokens: Sequence[str]) -> float:
        """Exact log-probability of ``tokens`` by deterministic LL(1) parsing.

        Raises ValueError if the tokens are not a complete document of this grammar.
        """
        toks = tuple(tokens)
        bound: list[int | None] = [None] * len(self._cvars)
        lp, pos = self._parse_rule(self._start, toks, 0, bound)
        if pos != len(toks):
            raise ValueError(f"trailing tokens after the document ends at {pos}")
        return lp

    # --- sampling ------------------------------------------------------------------------

    def _sample_rule(self, r: int, bits: _Bits, out: list[str], bound: list[int | None]) -> float:
        alts, cum, total, nbits, logps = self._crules[r]
        if len(alts) == 1:
            i, lp = 0, 0.0
        else:
            x = bits(nbits)
            while x >= total:
                x = bits(nbits)
            i = bisect_right(cum, x)
            lp = logps[i]
        for kind, a, b in alts[i]:
            if kind == _LIT:
                out += a
            elif kind == _REF:
                lp += self._sample_rule(a, bits, out, bound)
            else:
                v = bound[a]
                if v is None:
                    v, vlp = self._draw(a, bits, bound)
                    bound[a] = v
                    lp += vlp
                out += self._vtokens[a][b][v]
        return lp

    def _draw(self, a: int, bits: _Bits, bound: list[int | None]) -> tuple[int, float]:
        var = self._cvars[a]
        taken = {bound[o] for o in var.pool} - {None}
        if not taken:
            nbits, total = self._vbits[a], var.total
            x = bits(nbits)
            while x >= total:
                x = bits(nbits)
            i = bisect_right(var.cum, x)
            return i, var.logps[i]
        total = var.total - sum(var.weights[t] for t in taken)  # type: ignore[index]
        nbits = total.bit_length()
        x = bits(nbits)
        while x >= total:
            x = bits(nbits)
        for i, w in enumerate(var.weights):
            if i in taken:
                continue
            if x < w:
                return i, math.log(w / total)
            x -= w
        raise AssertionError("unreachable")

    # --- parsing -------------------------------------------------------------------------

    def _parse_rule(
        self, r: int, toks: tuple[str, ...], pos: int, bound: list[int | None]
    ) -> tuple[float, int]:
        alts, _, total, _, logps = self._crules[r]
        nxt = toks[pos] if pos < len(toks) else None
        i = self._select[r].get(nxt)  # type: ignore[arg-type]
        if i is None:
            raise ValueError(f"unexpected token {nxt!r} at {pos} in <{self._rule_names[r]}>")
        lp = 0.0 if len(alts) == 1 else logps[i]
        for kind, a, b in alts[i]:
            if kind == _LIT:
                if toks[pos : pos + len(a)] != a:
                    raise ValueError(f"expected {' '.join(a)!r} at {pos}")
                pos += len(a)
            elif kind == _REF:
                sub, pos = self._parse_rule(a, toks, pos, bound)
                lp += sub
            else:
                forms = self._vtokens[a][b]
                v = bound[a]
                if v is None:
                    v, vlp = self._identify(a, b, toks, pos, bound)
                    bound[a] = v
                    lp += vlp
                if toks[pos : pos + len(forms[v])] != forms[v]:
                    raise ValueError(f"expected {' '.join(forms[v])!r} at {pos}")
                pos += len(forms[v])
        return lp, pos

    def _identify(
        self, a: int, b: int, toks: tuple[str, ...], pos: int, bound: list[int | None]
    ) -> tuple[int, float]:
        var = self._cvars[a]
        forms = self._vtokens[a][b]
        nxt = toks[pos] if pos < len(toks) else None
        for v in self._vfirst[a][b].get(nxt, ()):  # type: ignore[arg-type]
            if toks[pos : pos + len(forms[v])] == forms[v]:
                taken = {bound[o] for o in var.pool} - {None}
                if v in taken:
                    raise ValueError(f"{var.name!r} repeats a value of its pool at {pos}")
                total = var.total - sum(var.weights[t] for t in taken)  # type: ignore[index]
                if not taken:
                    return v, var.logps[v]
                return v, math.log(var.weights[v] / total)
        raise ValueError(f"no value of {var.name!r} at {pos}")


def render(tokens: Sequence[str]) -> str:
    """Join tokens into natural text: no space before . , ! ? ; : and quotes hug their
    contents. Quotes alternate opening/closing."""
    parts: list[str] = []
    open_quote = False
    after_open = True  # no space before the first token
    for tok in tokens:
        if tok == '"':
            if open_quote:
                parts.append('"')
                open_quote, after_open = False, False
            else:
                if not after_open:
                    parts.append(" ")
                parts.append('"')
                open_quote, after_open = True, True
            continue
        if not after_open and tok not in _NO_SPACE_BEFORE:
            parts.append(" ")
        parts.append(tok)
        after_open = False
    return "".join(parts)


def alts(text: str) -> list[str]:
    """Split ``"a | b c | d"`` into alternatives; a compact way to write word lists."""
    return [a.strip() for a in text.split("|")]
