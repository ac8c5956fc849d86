"""The request being served, so that entries carry its id without every service passing it."""

from __future__ import annotations

from contextvars import ContextVar

current_request_id: ContextVar[str] = ContextVar("audit_request_id", default="")
