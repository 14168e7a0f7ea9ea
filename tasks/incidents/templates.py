"""Streaming log template mining: group messages by the statement that printed them.

``detect_incidents`` embeds and clusters templates, not lines; this module turns a stream
of messages into ``(template_id, template_text)`` in one pass with bounded memory.

How a message is placed (``TemplateMiner.add``):

1. Mask it (``tasks.incidents.masking``): IPs, ids, times, numbers... become placeholders.
2. Split on whitespace; a run of the same placeholder (``<BLK> <BLK> <BLK>``, a list of
   values) counts as one token. A token that contains a digit or a placeholder is a
   *variable*; other tokens are *words*. Words and variable positions form the message's
   signature; a signature seen before gets its template at once.
3. Otherwise compare with the templates of the same length. Two different words at a
   position mean different statements (``VM Paused`` / ``VM Started``, ``GET`` /
   ``POST``), so such templates are never joined; a word against a variable counts as
   half a mismatch (``()`` versus ``(host-1-2-3)``). The best template whose share of
   matching words reaches ``similarity`` takes the message and generalizes: positions
   that differ become ``<*>``.
4. Otherwise the message starts a new template. A word slot becomes a parameter, and the
   templates that differ only there are merged into the oldest, when more than
   ``max_word_values`` words have been seen in it, or when two different statements
   share two of their words in such a slot (``session opened for user cyrus by ...`` and
   ``session closed for user cyrus``, both also with ``news``: user names).

Speed: the first lookup is by the line's *shape* (its digits all made 0) when the masking
rules cannot tell digits apart (``Masker.digit_insensitive``, true of the defaults): all
lines of one shape mask and tokenize alike, so most lines are neither masked nor split.

Memory: the caches hold at most ``cache_size`` entries each, and at most
``max_templates`` templates are kept (beyond it the least recently used tenth is
dropped; their ids are never reused).

Template ids are ints from 1. A merge or an eviction is the only way an id stops being
current; ``resolve`` maps a merged id to the template that absorbed it.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from tasks.incidents.masking import PLACEHOLDER, Masker, is_placeholder, shape

WILDCARD = "<*>"
STATE_VERSION = 1

_VARIABLE = re.compile(rf"\d|{PLACEHOLDER.pattern}")
_DIGITS = re.compile(r"\d+")


@dataclass
class _Template:
    id: int
    signature: list[str]  # words, WILDCARD at variable positions: what matching compares
    display: list[str]  # what people read: placeholders and generalized tokens kept
    size: int = 0
    last_used: int = 0
    text: str = ""

    def __post_init__(self) -> None:
        self.text = " ".join(self.display)


def _is_boundary(char: str) -> bool:
    return not (char.isalnum() or char in "<>*")


def _generalize(a: str, b: str) -> str:
    """The most specific token covering both: ``rhost=<IP>``, ``rhost=x.org`` -> ``rhost=<*>``.

    Keeps the common prefix up to its last punctuation and the common suffix from its
    first punctuation; what differs between them becomes ``<*>``.
    """
    if a == b:
        return a
    limit = min(len(a), len(b))
    n = 0
    while n < limit and a[n] == b[n]:
        n += 1
    while n and not _is_boundary(a[n - 1]):
        n -= 1
    m = 0
    limit -= n
    while m < limit and a[-1 - m] == b[-1 - m]:
        m += 1
    while m and not _is_boundary(a[-m]):
        m -= 1
    return f"{a[:n]}{WILDCARD}{a[len(a) - m :] if m else ''}"


def tokenize(masked: str) -> tuple[list[str], list[str]]:
    """Split a masked message into (signature tokens, display tokens).

    A run of the same placeholder collapses to one token, so a list of values has one
    shape whatever its length.

    Example:
        >>> tokenize("delete <BLK> <BLK> <BLK> from core.12")
        (['delete', '<*>', 'from', '<*>'], ['delete', '<BLK>', 'from', 'core.<*>'])
    """
    signature: list[str] = []
    display: list[str] = []
    previous = None
    for token in masked.split():
        if token == previous and token[0] == "<" and is_placeholder(token):
            continue
        previous = token
        if _VARIABLE.search(token):
            signature.append(WILDCARD)
            display.append(_DIGITS.sub(WILDCARD, token))
        else:
            signature.append(token)
            display.append(token)
    return signature, display


_Family = tuple[int, int, tuple[str, ...]]  # (length, slot position, signature with slot = <*>)


class TemplateMiner:
    """Streaming template miner: one pass, incremental, bounded memory.

    Args:
        masker: masks variable parts before mining (default ``Masker()`` with
            ``DEFAULT_RULES``).
        similarity: least share of a template's words a message must match (a word
            against a variable counts half) to join it.
        max_word_values: how many different words one slot may hold (each its own
            template) before the slot is taken as a parameter.
        max_templates: templates kept; beyond it the least recently used tenth is dropped.
        cache_size: entries in each lookup cache (by shape or masked text, by signature);
            the oldest are dropped beyond it (a forgotten signature is matched again by
            similarity, which normally finds the same template).
        cache_by_shape: look lines up by shape before masking when the masker allows it
            (``False`` masks every line; the results are the same, only slower).

    Example:
        >>> miner = TemplateMiner()
        >>> miner.add("took 12 ms to connect to 10.0.0.1")
        (1, 'took <NUM> to connect to <IP>')
        >>> miner.add("took 7 ms to connect to 10.0.0.2")[0]
        1
    """

    def __init__(
        self,
        masker: Masker | None = None,
        *,
        similarity: float = 0.7,
        max_word_values: int = 5,
        max_templates: int = 50_000,
        cache_size: int = 100_000,
        cache_by_shape: bool = True,
    ) -> None:
        if not 0.0 < similarity <= 1.0:
            raise ValueError(f"similarity must be in (0, 1], got {similarity!r}")
        for name, value in (
            ("max_word_values", max_word_values),
            ("max_templates", max_templates),
            ("cache_size", cache_size),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        self.masker = masker if masker is not None else Masker()
        self.similarity = similarity
        self.max_word_values = max_word_values
        self.max_templates = max_templates
        self.cache_size = cache_size
        self._by_shape = cache_by_shape and self.masker.digit_insensitive
        self._templates: dict[int, _Template] = {}
        self._by_length: dict[int, list[_Template]] = {}
        self._merged_into: dict[int, int] = {}
        self._next_id = 1
        self._clock = 0
        self._by_key: dict[str | bytes, _Template] = {}  # shape (or masked text) -> template
        self._by_signature: dict[tuple[str, ...], _Template] = {}
        self._families: dict[_Family, set[str]] = {}  # words seen in a slot
        self._families_by_word: dict[str, set[_Family]] = {}

    # --- public API -------------------------------------------------------------------

    def add(self, message: str) -> tuple[int, str]:
        """Place one message; return its template's (id, text) as they are now.

        Args:
            message: one log message (the text after timestamp/level/component).

        Returns:
            ``(template_id, template_text)``; the text may generalize later, the id stays
            valid (``resolve`` follows merges).
        """
        if self._by_shape:
            key: str | bytes = shape(message)
            template = self._by_key.get(key)
            if template is None:
                template = self._remember(key, self._place(self.masker.mask(message)))
        else:
            key = self.masker.mask(message)
            template = self._by_key.get(key)
            if template is None:
                template = self._remember(key, self._place(key))
        self._clock += 1
        template.last_used = self._clock
        template.size += 1
        return template.id, template.text

    def match(self, message: str) -> tuple[int, str] | None:
        """The template a message belongs to, without learning from it.

        Returns:
            ``(template_id, template_text)`` of a template with the message's words at
            each of its word positions, else None.
        """
        signature, _ = tokenize(self.masker.mask(message))
        template = self._by_signature.get(tuple(signature))
        if template is not None:
            return template.id, template.text
        for template in self._by_length.get(len(signature), ()):
            if all(t in (WILDCARD, s) for t, s in zip(template.signature, signature, strict=True)):
                return template.id, template.text
        return None

    def templates(self) -> dict[int, str]:
        """Current templates: ``{template_id: text}`` in id order."""
        return {tid: t.text for tid, t in sorted(self._templates.items())}

    def sizes(self) -> dict[int, int]:
        """Lines placed in each current template (lines of templates merged into it too)."""
        return {tid: t.size for tid, t in sorted(self._templates.items())}

    def resolve(self, template_id: int) -> int:
        """The current id of a template id returned earlier (itself unless merged).

        An id that is neither current nor merged belongs to an evicted template.
        """
        while template_id in self._merged_into:
            template_id = self._merged_into[template_id]
        return template_id

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue mining in another run (JSON-serializable).

        The masker is not included: pass the same one to ``from_state``.
        """
        return {
            "version": STATE_VERSION,
            "similarity": self.similarity,
            "max_word_values": self.max_word_values,
            "max_templates": self.max_templates,
            "cache_size": self.cache_size,
            "next_id": self._next_id,
            "clock": self._clock,
            "templates": [
                {
                    "id": t.id,
                    "signature": t.signature,
                    "display": t.display,
                    "size": t.size,
                    "last_used": t.last_used,
                }
                for t in self._templates.values()
            ],
            "merged_into": {str(k): v for k, v in self._merged_into.items()},
            "signatures": [[list(k), t.id] for k, t in self._by_signature.items()],
            "families": [
                [length, position, list(rest), sorted(words)]
                for (length, position, rest), words in self._families.items()
            ],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], masker: Masker | None = None) -> TemplateMiner:
        """Rebuild a miner saved with ``state_dict``; it carries on as if never stopped.

        Raises:
            ValueError: the state is not one this version wrote.
        """
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            found = state.get("version") if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"state.version must be {STATE_VERSION}, got {found!r}")
        try:
            miner = cls(
                masker,
                similarity=state["similarity"],
                max_word_values=state["max_word_values"],
                max_templates=state["max_templates"],
                cache_size=state["cache_size"],
            )
            miner._next_id = int(state["next_id"])
            miner._clock = int(state["clock"])
            for row in state["templates"]:
                template = _Template(
                    int(row["id"]),
                    [str(t) for t in row["signature"]],
                    [str(t) for t in row["display"]],
                    int(row["size"]),
                    int(row["last_used"]),
                )
                if len(template.signature) != len(template.display):
                    raise ValueError(f"template {template.id}: signature and display lengths")
                miner._add_template(template)
            miner._merged_into = {int(k): int(v) for k, v in state["merged_into"].items()}
            for signature, tid in state["signatures"]:
                miner._by_signature[tuple(signature)] = miner._templates[int(tid)]
            for length, position, rest, words in state["families"]:
                miner._note_words((int(length), int(position), tuple(rest)), words)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"state is incomplete or malformed: {exc!r}") from None
        return miner

    # --- placing a message ------------------------------------------------------------

    def _remember(self, key: str | bytes, template: _Template) -> _Template:
        if len(self._by_key) >= self.cache_size:
            del self._by_key[next(iter(self._by_key))]
        self._by_key[key] = template
        return template

    def _place(self, masked: str) -> _Template:
        signature, display = tokenize(masked)
        key = tuple(signature)
        template = self._by_signature.get(key)
        if template is None:
            template = self._join_or_create(signature, display)
            if len(self._by_signature) >= self.cache_size:
                del self._by_signature[next(iter(self._by_signature))]
            self._by_signature[key] = template
        _show(template, display)
        return template

    def _join_or_create(self, signature: list[str], display: list[str]) -> _Template:
        best: _Template | None = None
        best_score = -1.0
        one_word_apart: dict[int, list[_Template]] = {}
        for template in self._by_length.get(len(signature), ()):
            matched = half = 0
            differs_at = -1  # -1: no two words differ; -2: more than one position does
            for i, (t, s) in enumerate(zip(template.signature, signature, strict=True)):
                if t == s:
                    if t != WILDCARD:
                        matched += 1
                elif t == WILDCARD or s == WILDCARD:
                    half += 1
                elif differs_at == -1:
                    differs_at = i
                else:
                    differs_at = -2
                    break
            if differs_at == -1 and matched:
                score = matched / (matched + 0.5 * half)
                if score > best_score:
                    best, best_score = template, score
            elif differs_at == -1 and not half:  # no words on either side: same shape
                best, best_score = template, 1.0
            elif differs_at >= 0 and not half:
                one_word_apart.setdefault(differs_at, []).append(template)
        if best is not None and best_score >= self.similarity:
            best.signature = _common(best.signature, signature)
            return best
        template = self._new_template(signature, display)  # may evict some of the others
        for position, others in one_word_apart.items():
            others = [t for t in others if t.id in self._templates]
            if not others or not _worth_a_slot(signature, position):
                continue
            if len(others) + 1 > self.max_word_values:
                return self._merge([*others, template], position)
            family = (len(signature), position, _rest(signature, position))
            sharing = self._note_words(family, [t.signature[position] for t in [*others, template]])
            if sharing is not None:
                self._merge_family(sharing)
                self._merge_family(family)
                return self._templates[self.resolve(template.id)]
        return template

    def _note_words(self, family: _Family, words: Iterable[str]) -> _Family | None:
        """Record words seen in a family's slot; return another statement sharing two.

        The same alternatives (``cyrus``, ``news``) in a slot of two different statements
        (``session opened for user X by ...``, ``session closed for user X``) are names,
        not part of either statement. Statements count as different when their lengths
        differ or more than one other word differs, so that states of one statement which
        co-vary (``n.state X ... my state Y``) never count.
        """
        seen = self._families.setdefault(family, set())
        seen.update(words)
        common: dict[_Family, int] = {}
        for word in seen:
            families = self._families_by_word.setdefault(word, set())
            families.add(family)
            for other in families:
                if other != family:
                    common[other] = common.get(other, 0) + 1
        for other, count in common.items():
            if count >= 2 and _different_statements(family, other):
                return other
        return None

    def _merge_family(self, family: _Family) -> None:
        """Merge the templates of ``family``'s statement, whatever word fills its slot."""
        length, position, rest = family
        members = [
            t
            for t in self._by_length.get(length, ())
            if t.signature[position] != WILDCARD
            and all(r in (WILDCARD, s) for r, s in zip(rest, t.signature, strict=True))
        ]
        self._forget_family(family)
        if len(members) > 1:
            self._merge(members, position)

    def _forget_family(self, family: _Family) -> None:
        for word in self._families.pop(family, ()):
            families = self._families_by_word.get(word)
            if families is not None:
                families.discard(family)
                if not families:
                    del self._families_by_word[word]

    def _add_template(self, template: _Template) -> None:
        self._templates[template.id] = template
        self._by_length.setdefault(len(template.signature), []).append(template)

    def _new_template(self, signature: list[str], display: list[str]) -> _Template:
        if len(self._templates) >= self.max_templates:
            self._evict()
        template = _Template(self._next_id, list(signature), list(display))
        self._next_id += 1
        self._add_template(template)
        return template

    def _merge(self, family: list[_Template], position: int) -> _Template:
        """Merge templates that differ only by the word at ``position`` into the oldest."""
        family.sort(key=lambda t: t.id)
        keep, rest = family[0], family[1:]
        keep.signature[position] = WILDCARD
        for other in rest:
            keep.signature = _common(keep.signature, other.signature)
            keep.display = [
                _generalize(a, b) for a, b in zip(keep.display, other.display, strict=True)
            ]
            keep.size += other.size
            keep.last_used = max(keep.last_used, other.last_used)
            self._merged_into[other.id] = keep.id
            self._drop(other)
        keep.display[position] = WILDCARD
        keep.text = " ".join(keep.display)
        self._repoint_caches()
        return keep

    def _evict(self) -> None:
        """Drop the least recently used tenth of the templates."""
        count = max(1, self.max_templates // 10)
        for template in sorted(self._templates.values(), key=lambda t: t.last_used)[:count]:
            self._drop(template)
        current = self._templates
        self._merged_into = {
            k: v for k, v in self._merged_into.items() if self.resolve(v) in current
        }
        self._repoint_caches()

    def _drop(self, template: _Template) -> None:
        del self._templates[template.id]
        self._by_length[len(template.signature)].remove(template)

    def _repoint_caches(self) -> None:
        """After merges or evictions: cached lookups follow merges, forget evictions."""
        current = self._templates
        for cache in (self._by_key, self._by_signature):
            stale = [key for key, t in cache.items() if t.id not in current]
            for key in stale:
                tid = self.resolve(cache[key].id)
                if tid in current:
                    cache[key] = current[tid]
                else:
                    del cache[key]


def _common(a: list[str], b: list[str]) -> list[str]:
    """Signature covering both: positions that differ become the wildcard."""
    return [x if x == y else WILDCARD for x, y in zip(a, b, strict=True)]


def _rest(signature: list[str], position: int) -> tuple[str, ...]:
    return tuple(WILDCARD if i == position else s for i, s in enumerate(signature))


def _worth_a_slot(signature: list[str], position: int) -> bool:
    """A slot may become a parameter only if 2+ words, and half the tokens, stay words."""
    words = sum(1 for i, s in enumerate(signature) if s != WILDCARD and i != position)
    return words >= 2 and words * 2 >= len(signature)


def _different_statements(a: _Family, b: _Family) -> bool:
    if a[0] != b[0]:
        return True
    differing = sum(1 for x, y in zip(a[2], b[2], strict=True) if x != y)
    return differing > 2  # the two slots themselves account for up to two


def _show(template: _Template, display: list[str]) -> None:
    """Generalize the template's text so that it covers this message too."""
    current = template.display
    if current == display:
        return
    changed = False
    for i, (a, b) in enumerate(zip(current, display, strict=True)):
        if a != b and a != WILDCARD:
            current[i] = _generalize(a, b)
            changed = True
    if changed:
        template.text = " ".join(current)


def mine(messages: Iterable[str], miner: TemplateMiner | None = None) -> Iterator[tuple[int, str]]:
    """Stream ``(template_id, template_text)`` for each message (one pass, lazily).

    Example:
        >>> [tid for tid, _ in mine(["a 1", "a 2", "b c"])]
        [1, 1, 2]
    """
    miner = miner if miner is not None else TemplateMiner()
    for message in messages:
        yield miner.add(message)


def group_accuracy(truth: Sequence[Hashable], predicted: Sequence[Hashable]) -> float:
    """Group accuracy: share of lines whose predicted group is exactly their true group.

    A line counts as correct when the set of lines sharing its predicted id equals the set
    of lines sharing its true id (Zhu et al., "Tools and Benchmarks for Automated Log
    Parsing", ICSE-SEIP 2019).

    Raises:
        ValueError: the sequences differ in length or are empty.
    """
    if len(truth) != len(predicted):
        raise ValueError(f"truth has {len(truth)} labels, predicted has {len(predicted)}")
    if not truth:
        raise ValueError("truth is empty")
    true_groups: dict[Hashable, list[int]] = {}
    predicted_groups: dict[Hashable, list[int]] = {}
    for i, (t, p) in enumerate(zip(truth, predicted, strict=True)):
        true_groups.setdefault(t, []).append(i)
        predicted_groups.setdefault(p, []).append(i)
    correct = 0
    for lines in predicted_groups.values():
        if true_groups[truth[lines[0]]] == lines:
            correct += len(lines)
    return correct / len(truth)
