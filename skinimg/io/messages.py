"""Warnings for people: identical messages from many photos or pairs collapse into one line with a count."""

from __future__ import annotations

import re
from typing import Iterable

__all__ = ["collapse_messages", "format_collapsed"]

#: Prefixes naming which photo of a pair a message is about; "no chart found" on BEFORE and on AFTER is one message.
PAIR_PREFIXES = ("BEFORE: ", "AFTER: ")


def collapse_messages(items: Iterable[tuple[str, str]], *, prefixes: tuple[str, ...] = PAIR_PREFIXES) -> list[dict]:
    """Group ``(source, message)`` items by message, first-seen order.

    A leading prefix of ``prefixes`` is removed first, so the same warning about either photo of a pair is one
    message; messages that differ only in a trailing detail in parentheses ("no chart found (1 candidate
    square)", "... (2 candidate squares)") are one message too, shown without the detail.  Returns
    ``[{"message", "count", "sources"}]``: ``count`` items, ``sources`` the distinct sources in first-seen order.

    >>> collapse_messages([("a", "BEFORE: no chart (x)"), ("a", "AFTER: no chart (y)"), ("b", "BEFORE: no chart (x)"),
    ...                    ("b", "dark backdrop")])
    [{'message': 'no chart', 'count': 3, 'sources': ['a', 'b']}, {'message': 'dark backdrop', 'count': 1, 'sources': ['b']}]
    """
    groups: dict[str, dict] = {}
    for source, message in items:
        text = str(message)
        for pre in prefixes:
            if text.startswith(pre):
                text = text[len(pre):]
                break
        head = re.sub(r"\s*\(.*\)\s*$", "", text) or text
        g = groups.setdefault(head, {"message": text, "count": 0, "sources": []})
        if g["message"] != text:
            g["message"] = head  # details differ: the common message only
        g["count"] += 1
        if source not in g["sources"]:
            g["sources"].append(source)
    return list(groups.values())


def format_collapsed(group: dict, *, what: str = "times", max_sources: int = 3) -> str:
    """One line for a :func:`collapse_messages` group: the message, then ``(N times: a, b, c, ...)`` when repeated.

    >>> format_collapsed({"message": "no chart", "count": 3, "sources": ["a", "b"]})
    'no chart (3 times: a, b)'
    >>> format_collapsed({"message": "no chart", "count": 1, "sources": ["a"]})
    'a: no chart'
    """
    src = [str(s) for s in group["sources"] if s]
    if group["count"] == 1:
        return f"{src[0]}: {group['message']}" if src else group["message"]
    shown = ", ".join(src[:max_sources]) + (", ..." if len(src) > max_sources else "")
    return f"{group['message']} ({group['count']} {what}{': ' + shown if shown else ''})"
