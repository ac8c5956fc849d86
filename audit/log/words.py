"""The verifier's sentences, marked for the translation catalogue without Django.

The verifier runs where Django does not (an auditor's machine: `python -m audit.log.verify`) and, in the
portal, on a worker, which answers no reader: its sentences are English wherever they are made. `make
messages` extracts `gettext_noop("...")` like Django's own, so the portal finds a stored summary's message in
the catalogue and says it again in the reader's language (portal/platform/said.py).
"""

from __future__ import annotations


def gettext_noop(text: str) -> str:
    return text
