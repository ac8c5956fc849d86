"""The organisations' redaction patterns as each process keeps them, versioned with the log's head."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from audit.log import redaction
from audit.log.models import LogHead, RedactionRule

logger = logging.getLogger("steward.audit")

Rules = list[tuple[str, Any]]  # (label, RE2 pattern: redaction.compile_rule)


class RuleBook:
    """The organisations' own redaction patterns, kept in this process for one version of them.

    The version is `LogHead.rules_version`, which every rule created or deleted sets to a new random
    value under the head's lock (never reused, so rules read in a rolled-back transaction never pass for
    rules committed later).
    An append is redacted with the rules of the version this process knows and is written only
    if that still is the head's version (the sequencer checks it in the same statement, or under
    the lock, and has the entry prepared again otherwise). So an append costs no lookup of the
    rules, and no entry is ever stored redacted by rules older than those committed before it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: int | None = None
        self._by_org: dict[int, Rules] = {}

    def version(self) -> int:
        known = self._version
        if known is None:  # once per process (and after forget): the version it starts from
            found = LogHead.objects.filter(pk=1).values_list("rules_version", flat=True).first() or 0
            with self._lock:
                if self._version is None:
                    self._version = found
                known = self._version
        return known

    def forget(self) -> None:
        with self._lock:
            self._version, self._by_org = None, {}

    def rules(self, version: int, organization_id: int | None) -> Rules:
        if organization_id is None:
            return []
        with self._lock:
            if version != self._version:  # the head has moved on (or back, after a rollback): start again
                self._version, self._by_org = version, {}
            known = self._by_org.get(organization_id)
        if known is None:
            stored = RedactionRule.objects.filter(organization_id=organization_id).values_list("label", "pattern")
            known = [(label, _compiled(label, pattern)) for label, pattern in stored]
            with self._lock:
                if version == self._version:
                    self._by_org[organization_id] = known
        return known


class _WholeText:
    """Stands for a stored rule that RE2 cannot run (one saved before patterns were checked for it):
    rather than store what the rule was meant to hide, every string it sees is redacted whole."""

    def sub(self, replacement: str, text: str) -> str:
        return replacement if text else text


def _compiled(label: str, pattern: str) -> Any:
    try:
        return redaction.compile_rule(pattern)
    except ValueError as exc:
        logger.error("redaction rule %s cannot run in linear time (%s): its organisation's texts are redacted "
                     "whole until an admin replaces it", label, exc)
        return _WholeText()


_book = RuleBook()


def book() -> RuleBook:
    """This process's book (a new one in a forked child)."""
    return _book


def _reset_after_fork() -> None:  # a forked worker must not inherit a lock held by a thread
    global _book
    _book = RuleBook()


os.register_at_fork(after_in_child=_reset_after_fork)
