"""/v1/embeddings, OpenAI's shape: vectors of texts from a text-embedding model, served on the
predictions' path (the same admission, quota in rows, dynamic batch on the inference workers and
receipt; the audit log keeps a hash of each vector, not its numbers)."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from inference import selectors
from inference.apis.openai_compat import OpenAIView, RefusingInput
from inference.apis.openai_texts import predicted, texts_of, with_receipt_headers
from inference.exceptions import NotEmbedding
from inference.models import Task
from inference.services.predictions import language_notice
from portal.accounts.roles import Cap
from portal.platform.exceptions import PortalError
from portal.web.api import actor_of


class EmbeddingInput(RefusingInput):
    model = serializers.CharField(max_length=200, help_text="a model name, name@alias or name@version")
    input = serializers.JSONField(help_text="a text or a list of texts")
    encoding_format = serializers.ChoiceField(choices=["float", "base64"], required=False, default="float")
    dimensions = serializers.IntegerField(required=False, min_value=1, allow_null=True)
    user = serializers.CharField(required=False, allow_blank=True, max_length=256)

    def validate_input(self, value: Any) -> list[str]:
        return texts_of(value, refuse_token_ids=True)


def _embedding_version(actor: Any, ref: str) -> Any:
    version = selectors.version_resolve_for_serving(actor=actor, ref=ref)
    if version.task != Task.EMBEDDING:
        raise NotEmbedding(gettext("The model '%(name)s' does not make embeddings; choose a text-embedding model (GET /v1/models lists them).") % {"name": version.model.name}, details={"param": "model"})
    return version


def _vector(values: list[float], encoding: str) -> Any:
    if encoding == "base64":  # what OpenAI's SDKs ask for by default: float32, little-endian
        import base64

        import numpy as np

        return base64.b64encode(np.asarray(values, dtype="<f4").tobytes()).decode()
    return values


class EmbeddingsApi(OpenAIView):
    """Vectors of texts from a text-embedding model, on the inference workers (the predictions' path: the
    same admission, quota in rows, dynamic batch and receipt; the audit log keeps a hash of each vector)."""

    required_capability = Cap.MODEL_PREDICT

    @extend_schema(exclude=True)
    def post(self, request: Request) -> Response:
        data = EmbeddingInput(data=request.data)
        data.is_valid(raise_exception=True)
        asked = data.validated_data
        actor = actor_of(request)
        version = _embedding_version(actor, asked["model"])
        dimensions = (version.input_schema or {}).get("dimensions")
        if asked.get("dimensions") not in (None, dimensions):
            raise PortalError(gettext("This model's vectors have %(dimensions)s dimensions; it cannot shorten them.") % {"dimensions": dimensions},
                              details={"param": "dimensions"})
        result, stored = predicted(request, actor, version, asked["input"], subject=asked.get("user", ""),
                                   embedding=True)
        rows = result["predictions"]
        tokens = sum(int(r["tokens"]) for r in rows)
        body = {
            "object": "list", "model": f"{version.model.name}@{version.version}",
            "data": [{"object": "embedding", "index": i, "embedding": _vector(r["embedding"], asked["encoding_format"])}
                     for i, r in enumerate(rows)],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            "steward": {"prediction": result["id"], "receipt": result["receipt"], "device": result["device"],
                        "compute_ms": result["compute_ms"], "language": language_notice(stored)},
        }
        return with_receipt_headers(body, result)

