"""The base of every response body's serializer: one output convention for the API, described in its schema.

Each resource has one output serializer (its fields, their types and help texts), which both the API
views and the compliance export render; the OpenAPI schema is generated from the same class, so the
schema describes what is sent. A job's result fields exist once the job is done and its error once it
failed: `only_when` names such fields with the state they need, and they are left out otherwise (the
schema marks them optional), as the API has always answered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from rest_framework import serializers
from rest_framework.fields import SkipField


class OutputSerializer(serializers.Serializer):  # type: ignore[type-arg]
    only_when: ClassVar[dict[str, Callable[[Any], bool]]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in self.only_when:
            self.fields[name].required = False  # optional in the schema

    def to_representation(self, instance: Any) -> dict[str, Any]:
        body: dict[str, Any] = {}
        for field in self._readable_fields:
            name = str(field.field_name)
            when = self.only_when.get(name)
            if when is not None and not when(instance):
                continue
            try:
                value = field.get_attribute(instance)
            except SkipField:
                continue
            body[name] = None if value is None else field.to_representation(value)
        return body


def status_is(*states: str) -> Callable[[Any], bool]:
    """`only_when` predicate: the instance's status is one of `states`."""
    wanted = {str(s) for s in states}
    return lambda instance: str(instance.status) in wanted


def has_result(instance: Any) -> bool:
    return str(instance.status) == "done" and bool(instance.result)


class Receipt(serializers.Serializer):  # type: ignore[type-arg]
    """Where the audit log holds the record of this object: verify it with an inclusion proof."""

    index = serializers.IntegerField(help_text="the entry's position in the audit log")
    leaf_hash = serializers.CharField(help_text="the entry's leaf hash (hex)")

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("source", "*")
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def get_attribute(self, instance: Any) -> Any:
        """A stored object's `audit_index`/`audit_leaf_hash`, or a typed result's `receipt`; None before it is logged."""
        if isinstance(instance, Mapping):
            return instance.get("receipt")
        index = getattr(instance, "audit_index", None)
        return None if index is None else {"index": index, "leaf_hash": instance.audit_leaf_hash}
