"""/v1/moderations, OpenAI's shape: whether texts fall in the categories a moderation model scores.

A moderation model is a text-classification model with a label `neither` (text in none of its
categories); its other labels are the categories it reports, and only those: the demo `moderation`
model scores `hate` and `offensive` (Davidson et al.'s labels), not OpenAI's other categories
(violence, self-harm, sexual, ...), which it was never trained to see. A category is flagged when
its score (the model's probability for that label) reaches MODERATION_FLAG_SCORE. It is served on
the predictions' path (quota in rows, dynamic batch, receipt), like any classification.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils.translation import gettext
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from inference import selectors
from inference.apis.openai_compat import OpenAIView, RefusingInput
from inference.apis.openai_texts import predicted, texts_of, with_receipt_headers
from inference.exceptions import NotModeration
from inference.models import Task
from portal.accounts.roles import Cap
from portal.web.api import actor_of

NEUTRAL_LABEL = "neither"


class ModerationInput(RefusingInput):
    model = serializers.CharField(max_length=200, required=False,
                                  help_text="a moderation model's name, name@alias or name@version (default: moderation)")
    input = serializers.JSONField(help_text="a text or a list of texts")

    def validate_input(self, value: Any) -> list[str]:
        return texts_of(value)


def moderation_version(actor: Any, ref: str) -> Any:
    version = selectors.version_resolve_for_serving(actor=actor, ref=ref)
    if version.task != Task.TEXT or NEUTRAL_LABEL not in version.labels or len(version.labels) < 2:
        raise NotModeration(gettext("The model '%(name)s' is not a moderation model: one is a text classifier with a label '%(neutral_label)s' beside the categories it scores.") % {"name": version.model.name, "neutral_label": NEUTRAL_LABEL},
                            details={"param": "model"})
    return version


def moderation_result(row: dict[str, Any], categories: list[str]) -> dict[str, Any]:
    scores = {c: round(float(row["scores"][c]), 6) for c in categories}
    flags = {c: scores[c] >= settings.MODERATION_FLAG_SCORE for c in categories}
    return {"flagged": any(flags.values()), "categories": flags, "category_scores": scores,
            "category_applied_input_types": {c: ["text"] for c in categories}}


class ModerationsApi(OpenAIView):
    required_capability = Cap.MODEL_PREDICT

    @extend_schema(exclude=True)  # OpenAI's API reference describes it
    def post(self, request: Request) -> Response:
        data = ModerationInput(data=request.data)
        data.is_valid(raise_exception=True)
        asked = data.validated_data
        actor = actor_of(request)
        version = moderation_version(actor, asked.get("model") or settings.MODERATION_MODEL)
        result, _ = predicted(request, actor, version, asked["input"])
        categories = [label for label in version.labels if label != NEUTRAL_LABEL]
        body = {"id": f"modr-{result['id']}", "model": f"{version.model.name}@{version.version}",
                "results": [moderation_result(row, categories) for row in result["predictions"]],
                "steward": {"prediction": result["id"], "receipt": result["receipt"], "device": result["device"],
                            "flag_score": settings.MODERATION_FLAG_SCORE}}
        return with_receipt_headers(body, result)
