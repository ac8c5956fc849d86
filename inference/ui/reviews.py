"""The reviewer's inbox page."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext_lazy

from inference.reviews import review_queue
from portal.accounts.roles import Cap
from portal.web.access import capability_required


@capability_required(Cap.MODEL_REVIEW, gettext_lazy("review model versions"))
def review_inbox(request: HttpRequest) -> HttpResponse:
    return render(request, "inference/reviews.html", {"reviews": review_queue(actor=request.actor)})  # type: ignore[attr-defined]
