"""The ML stack's sentences, in the reader's language where Django runs.

inference/ml runs without Django too (the sandboxed checks of an upload, the GPU scripts): there a
sentence is as written (English). In the portal, a refusal raised while a request is answered (an input
that does not fit the model's schema) is said in the request's language; on a worker, with no language
active, in English. `make messages` extracts `_("...")` like any gettext call.
"""

from __future__ import annotations


def _(text: str) -> str:
    try:
        from django.utils.translation import gettext

        return gettext(text)
    except Exception:  # Django absent or not configured
        return text


def gettext_noop(text: str) -> str:
    """Marks a sentence made once (a module's table) for the catalogue: it is stored as written, and a page
    says it in the reader's language when it shows it (gettext, or portal/platform/said.py)."""
    return text
