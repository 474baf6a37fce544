"""Warnings for people: identical messages from many photos or pairs collapse into one line with a count."""

from __future__ import annotations

import re
from typing import Iterable

__all__ = ["collapse_messages", "format_collapsed", "pair_warning_source"]

#: Prefixes naming which photo of a pair a message is about; "no chart found" on BEFORE and on AFTER is one message.
PAIR_PREFIXES = ("BEFORE: ", "AFTER: ")


def pair_warning_source(message: str, pair: str, before: str, after: str) -> tuple[str, str, str]:
    """``(source, message, unit)`` of a warning of a compared pair, for :func:`collapse_messages`.

    A message about one photo of the pair (``"BEFORE: ..."``, ``"AFTER: ..."``) is the photo's: ``(before or after,
    message, "photos")``, so a photo compared in several pairs of a series counts once.  Any other message is the
    pair's: ``(pair, message, "pairs")``.

    >>> pair_warning_source("AFTER: no chart found", "a vs b", "a", "b")
    ('b', 'AFTER: no chart found', 'photos')
    >>> pair_warning_source("not pixel-aligned", "a vs b", "a", "b")
    ('a vs b', 'not pixel-aligned', 'pairs')
    """
    text = str(message)
    if text.startswith(PAIR_PREFIXES[0]):
        return before, text, "photos"
    if text.startswith(PAIR_PREFIXES[1]):
        return after, text, "photos"
    return pair, text, "pairs"


def collapse_messages(items: Iterable[tuple], *, prefixes: tuple[str, ...] = PAIR_PREFIXES) -> list[dict]:
    """Group ``(source, message)`` or ``(source, message, unit)`` items by message, first-seen order.

    A leading prefix of ``prefixes`` is removed first, so the same warning about either photo of a pair is one
    message; messages that differ only in a trailing detail in parentheses ("no chart found (1 candidate
    square)", "... (2 candidate squares)") are one message too, shown without the detail.  The same message from
    the same source counts once (a photo compared in three pairs has one "no chart found"); an empty source counts
    every time.  Returns ``[{"message", "count", "sources", "unit"}]``: ``count`` the distinct sources (plus the
    items without one), ``sources`` them in first-seen order, ``unit`` the first item's unit (``"times"`` when the
    items carry none), which :func:`format_collapsed` prints.

    >>> collapse_messages([("a", "BEFORE: no chart (x)"), ("a", "AFTER: no chart (y)"), ("b", "BEFORE: no chart (x)"),
    ...                    ("b", "dark backdrop")])
    [{'message': 'no chart', 'count': 2, 'sources': ['a', 'b'], 'unit': 'times'}, {'message': 'dark backdrop', 'count': 1, 'sources': ['b'], 'unit': 'times'}]
    """
    groups: dict[str, dict] = {}
    for item in items:
        source, message = item[0], item[1]
        unit = item[2] if len(item) > 2 and item[2] else "times"
        text = str(message)
        for pre in prefixes:
            if text.startswith(pre):
                text = text[len(pre):]
                break
        head = re.sub(r"\s*\(.*\)\s*$", "", text) or text
        g = groups.setdefault(head, {"message": text, "count": 0, "sources": [], "unit": unit})
        if g["message"] != text:
            g["message"] = head  # details differ: the common message only
        if not source:
            g["count"] += 1
        elif source not in g["sources"]:
            g["sources"].append(source)
            g["count"] += 1
    return list(groups.values())


def format_collapsed(group: dict, *, what: str = "times", max_sources: int = 3) -> str:
    """One line for a :func:`collapse_messages` group: the message, then ``(N <unit>: a, b, c, ...)`` when repeated.

    The unit is the group's ``unit`` when it is not ``"times"``, else ``what``.

    >>> format_collapsed({"message": "no chart", "count": 3, "sources": ["a", "b", "c"], "unit": "photos"})
    'no chart (3 photos: a, b, c)'
    >>> format_collapsed({"message": "no chart", "count": 1, "sources": ["a"]})
    'a: no chart'
    """
    src = [str(s) for s in group["sources"] if s]
    if group["count"] == 1:
        return f"{src[0]}: {group['message']}" if src else group["message"]
    unit = group.get("unit") if group.get("unit") not in (None, "times") else what
    shown = ", ".join(src[:max_sources]) + (", ..." if len(src) > max_sources else "")
    return f"{group['message']} ({group['count']} {unit}{': ' + shown if shown else ''})"
