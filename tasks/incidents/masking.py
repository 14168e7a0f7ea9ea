"""Masking of log messages: variable parts (IPs, ids, times, numbers...) become placeholders.

Masking is the first step of template mining (``tasks.incidents.templates``): two lines that differ
only in an address, a duration or a request id should look identical afterwards, so that
the miner sees the message's fixed text. Rules are ordered; all of them are compiled into
one regular expression (an alternation, one named group per rule) and applied in a single
pass, so at any position the first rule that matches wins and masking costs one scan of
the line however many rules there are. Rules marked ``word_start`` share a guard that
rejects positions inside words before any rule is tried.

Placeholders look like ``<IP>``: angle brackets around capital letters, which the miner
recognises as already-variable tokens (``is_placeholder``).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass

# What placeholders look like; the template miner treats such tokens as variables.
PLACEHOLDER = re.compile(r"<[A-Z*][A-Z0-9_*]*>")

# Pieces shared by several rules.
_B = r"(?<![\w.\-])"  # start of a value: not inside a word, a dotted name or a dashed id
_E = r"(?![\w\-]|\.\w)"  # end of a value: a trailing full stop is allowed, ".x" is not
_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*"
_WEEKDAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*"
_TIME = r"\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?"
_ZONE = r"(?:\s?(?:Z|[+-]\d{2}:?\d{2}|UTC|GMT))?"
_H4 = r"[0-9A-Fa-f]{1,4}"
_IPV6 = (
    rf"(?:(?:{_H4}:){{7}}{_H4}"  # full form
    rf"|(?:{_H4}:){{1,6}}(?::{_H4}){{1,6}}"  # a::b, a:b::c:d (one or more groups each side)
    rf"|(?:{_H4}:){{1,7}}:"  # a:b::
    rf"|::(?:{_H4}:){{0,6}}{_H4})"  # ::1, ::ffff:a:b
)
# Units written right after the number: 10ms, 5.2MB, 300s, 50%
_UNITS = (
    r"(?:ns|us|µs|ms|s|sec|secs|m|min|mins|h|hr|hrs|d|"
    r"[KMGTP]i?B|[kmgtp]b|B|bytes|[KMGk]|Hz|[KMG]Hz|bps|[KMG]bps|%)"
)
# Units that may also follow after one space: 5.4 KB, 93.0 B, 12 ms
_SPACED_UNITS = r"(?:[KMGTP]i?B|B|bytes|ns|us|µs|ms)"


@dataclass(frozen=True)
class MaskRule:
    """One masking rule: text matching ``pattern`` is replaced by ``placeholder``.

    Args:
        name: a short identifier (letters, digits, underscore), unique within a ruleset.
        pattern: a regular expression (Python ``re`` syntax; use non-capturing groups
            or named groups, not numbered back-references).
        placeholder: the replacement text, conventionally ``<NAME>``.
        word_start: True when a match can only start where no letter, digit or
            underscore precedes; the Masker then skips the inside of words for this rule
            (about twice as fast). True for every default rule.
    """

    name: str
    pattern: str
    placeholder: str
    word_start: bool = False


DEFAULT_RULES: tuple[MaskRule, ...] = (
    # URLs before paths and IPs: the whole address is one value.
    MaskRule(
        "url", r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s\"'<>()\[\]{},;]+", "<URL>", word_start=True
    ),
    MaskRule(
        "uuid",
        r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}"
        r"-[0-9A-Fa-f]{12}(?![0-9A-Fa-f])",
        "<UUID>",
        word_start=True,
    ),
    # request / trace ids: OpenStack req-..., W3C traceparent, AWS X-Ray
    MaskRule(
        "request_id",
        r"\b(?:req|request|trace|span|txn|correlation)[-_][0-9A-Za-z][0-9A-Za-z\-]{7,}"
        r"|\b\d\d-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}\b"
        r"|\b\d-[0-9a-f]{8}-[0-9a-f]{24}\b",
        "<REQ>",
        word_start=True,
    ),
    MaskRule(
        "timestamp",
        # ISO 8601 / RFC 3339 and "2024-01-31 12:00:00,123"
        rf"\b\d{{4}}-\d{{2}}-\d{{2}}(?:[T ]{_TIME}{_ZONE})?(?!\d)"
        # Apache / CLF: 10/Oct/2000:13:55:36 -0700
        rf"|\b\d{{1,2}}/{_MONTH}/\d{{4}}(?::\d{{2}}){{3}}(?:\s[+-]\d{{4}})?"
        # ctime / syslog: [Fri] Jun 17 07:07:00 [2005]
        rf"|\b(?:{_WEEKDAY},?\s+)?{_MONTH}\s+\d{{1,2}},?\s+{_TIME}(?:\s+\d{{4}})?{_ZONE}\b"
        # dates alone: 2024/01/31, 31/01/2024, 31.01.2024
        r"|\b\d{4}/\d{2}/\d{2}\b|\b\d{1,2}[/.]\d{1,2}[/.]\d{4}\b"
        # times alone: 07:07:00, 12:00:00.123
        rf"|(?<![\w:.]){_TIME}(?![\w:])",
        "<TS>",
        word_start=True,
    ),
    MaskRule(
        "mac",
        r"(?<![\w:\-])(?:[0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}(?![\w:\-])"
        r"|(?<![\w:\-])(?:[0-9A-Fa-f]{2}-){5}[0-9A-Fa-f]{2}(?![\w:\-])",
        "<MAC>",
        word_start=True,
    ),
    MaskRule(
        "ipv4",
        r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?(?![\w]|\.\d)",
        "<IP>",
        word_start=True,
    ),
    MaskRule(
        "ipv6",
        rf"\[{_IPV6}\](?::\d{{1,5}})?|(?<![\w:.]){_IPV6}(?![\w:.]|\.\w)",
        "<IP>",
        word_start=True,
    ),
    MaskRule("block_id", r"\bblk_-?\d+\b", "<BLK>", word_start=True),
    # 0x7fff1234 (written \d, not 0, to keep the rules digit-insensitive: see Masker)
    MaskRule("hex", r"\b\d[xX][0-9A-Fa-f]+\b", "<HEX>", word_start=True),
    # hex strings of 8+ digits with a letter among them: hashes, addresses, ids
    MaskRule("hex_id", r"\b(?=[0-9A-Fa-f]*[A-Fa-f])[0-9A-Fa-f]{8,}\b", "<ID>", word_start=True),
    MaskRule(
        "path",
        # not an IPv4 address after a slash: /10.0.0.1:50010 is an address
        r"(?<![\w.:/])(?:~|\.{1,2})?/(?!(?:\d{1,3}\.){3}\d{1,3}\b)[\w.+@%~=,\-]+"
        r"(?:/[\w.+@%~=,\-]+)*/?"
        r"|\b[A-Za-z]:\\[^\s\"'<>|]+",
        "<PATH>",
        word_start=True,
    ),
    MaskRule(
        "number_unit",
        rf"{_B}[-+]?\d+(?:\.\d+)?(?:{_UNITS}| {_SPACED_UNITS}){_E}",
        "<NUM>",
        word_start=True,
    ),
    MaskRule("number", rf"{_B}[-+]?\d+(?:[.,]\d+)*{_E}", "<NUM>", word_start=True),
)


_DIGIT_CODES = frozenset(range(ord("0"), ord("9") + 1))
_SHAPE = bytes.maketrans(b"123456789", b"000000000")


def shape(text: str) -> bytes:
    """``text`` with every ASCII digit turned into 0 (UTF-8): its shape.

    Lines with one shape mask alike under digit-insensitive rules (``Masker``).
    """
    return text.encode("utf-8", "surrogatepass").translate(_SHAPE)


def _digit_insensitive(pattern: str) -> bool:
    """True when no test in ``pattern`` tells one ASCII digit from another.

    Then replacing digits by other digits never changes where the pattern matches. A
    literal digit, a class holding some digits but not all, or a back-reference makes
    a pattern sensitive; anything unrecognised counts as sensitive too.
    """
    from re import _constants as c
    from re import _parser

    def in_class(items) -> bool:
        digits: set[int] = set()
        for op, av in items:
            if op is c.LITERAL and av in _DIGIT_CODES:
                digits.add(av)
            elif op is c.RANGE:
                digits.update(d for d in _DIGIT_CODES if av[0] <= d <= av[1])
            elif op not in (c.CATEGORY, c.NEGATE, c.LITERAL, c.RANGE):
                return False
        return not digits or digits == _DIGIT_CODES

    def walk(items) -> bool:
        for op, av in items:
            if op in (c.LITERAL, c.NOT_LITERAL):
                if av in _DIGIT_CODES:
                    return False
            elif op is c.IN:
                if not in_class(av):
                    return False
            elif op is c.SUBPATTERN:
                if not walk(av[3]):
                    return False
            elif op is c.BRANCH:
                if not all(walk(branch) for branch in av[1]):
                    return False
            elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
                if not walk(av[2]):
                    return False
            elif op in (c.ASSERT, c.ASSERT_NOT):
                if not walk(av[1]):
                    return False
            elif op is c.ATOMIC_GROUP:
                if not walk(av):
                    return False
            elif op not in (c.ANY, c.AT, c.CATEGORY):
                return False  # back-references and anything newer: be safe
        return True

    try:
        return walk(_parser.parse(pattern))
    except Exception:  # an internal parser: any surprise means "unsure"
        return False


def is_placeholder(token: str) -> bool:
    """True for a token that is exactly a placeholder such as ``<IP>`` or ``<*>``."""
    return PLACEHOLDER.fullmatch(token) is not None


class Masker:
    """Applies ordered masking rules to log messages in one regex pass.

    Args:
        rules: the rules in priority order (default ``DEFAULT_RULES``); at any position in
            the text the first rule whose pattern matches there wins.

    ``digit_insensitive`` is True when no rule tells one digit from another (true of
    ``DEFAULT_RULES``): lines with the same ``shape`` then mask alike, which lets the
    template miner cache by shape and skip masking for most lines.

    Example:
        >>> Masker().mask("connect to 10.0.0.1:8080 took 12ms")
        'connect to <IP> took <NUM>'
    """

    def __init__(self, rules: Iterable[MaskRule] = DEFAULT_RULES) -> None:
        self.rules = tuple(rules)
        names = [r.name for r in self.rules]
        for rule in self.rules:
            if not re.fullmatch(r"[A-Za-z_]\w*", rule.name):
                raise ValueError(f"MaskRule name {rule.name!r}: use letters, digits and _")
            try:
                re.compile(rule.pattern)
            except re.error as exc:
                raise ValueError(f"MaskRule {rule.name!r} pattern: {exc}") from None
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"MaskRule names must be unique; repeated: {', '.join(duplicates)}")
        self._placeholders = {r.name: r.placeholder for r in self.rules}
        if self.rules:
            # Consecutive word-start rules share one "(?<!\w)" guard: positions inside
            # words fail on it at once instead of trying every rule. Order is kept.
            parts = []
            for word_start, group in itertools.groupby(self.rules, key=lambda r: r.word_start):
                alternatives = "|".join(f"(?P<{r.name}>{r.pattern})" for r in group)
                parts.append(rf"(?<!\w)(?:{alternatives})" if word_start else alternatives)
            try:
                self._regex: re.Pattern[str] | None = re.compile("|".join(parts))
            except re.error as exc:
                raise ValueError(
                    f"MaskRule patterns cannot be combined into one expression ({exc}): "
                    "scope inline flags as (?i:...), name back-references as (?P=name), "
                    "keep group names unique"
                ) from None
        else:
            self._regex = None
        self.digit_insensitive = all(_digit_insensitive(r.pattern) for r in self.rules)
        placeholders = self._placeholders
        # A rule's outer group closes after any group inside it, so ``lastgroup`` names
        # the rule that matched.
        self._replace = lambda match: placeholders[match.lastgroup]

    def mask(self, text: str) -> str:
        """Return ``text`` with every rule's matches replaced by the rule's placeholder."""
        if self._regex is None:
            return text
        return self._regex.sub(self._replace, text)
