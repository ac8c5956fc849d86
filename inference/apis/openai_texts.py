"""What /v1/embeddings and /v1/moderations share: texts in, the predictions' path, the receipt out."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from inference.models import Prediction
from inference.services import predictions
from portal.platform.exceptions import PortalError


def texts_of(value: Any, *, refuse_token_ids: bool = False) -> list[str]:
    """OpenAI's `input`: a text or a non-empty list of texts."""
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts:
        raise serializers.ValidationError(gettext('input must be a text or a non-empty list of texts.'))
    if refuse_token_ids and (all(isinstance(t, int) for t in texts) or all(isinstance(t, list) for t in texts)):
        raise serializers.ValidationError(gettext('Steward takes texts, not token ids: send the text itself.'))
    if not all(isinstance(t, str) for t in texts):
        raise serializers.ValidationError(gettext('Steward takes text only: input must be a text or a list of texts.'))
    return list(texts)


def predicted(request: Request, actor: Any, version: Any, texts: list[str],
              **options: Any) -> tuple[predictions.PredictionResult, Prediction]:
    """The texts through the predictions' path (admission, quota in rows, batch, receipt), waited for;
    the answer and the stored prediction. A refusal of the inputs names the `input` parameter, as
    OpenAI's errors do."""
    try:
        admitted = predictions.prediction_create(actor=actor, version=version, inputs=texts,
                                                 request_id=getattr(request._request, "request_id", ""), **options)
    except PortalError as exc:
        if exc.status_code == 400 and not exc.details.get("param"):
            exc.details = {**exc.details, "param": "input"}
        raise
    return predictions.prediction_wait(admitted), admitted.stored


def with_receipt_headers(body: dict[str, Any], result: predictions.PredictionResult) -> Response:
    response = Response(body)
    response["X-Steward-Prediction"] = str(result["id"])
    if result["receipt"]:
        response["X-Steward-Receipt-Index"] = str(result["receipt"]["index"])
        response["X-Steward-Receipt-Leaf-Hash"] = result["receipt"]["leaf_hash"]
    return response
