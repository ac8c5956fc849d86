"""The model card's evaluation on held-out data: the owner's form; the job runs on the workers."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from inference import selectors
from inference.services import evaluations
from portal.accounts.roles import Cap
from portal.platform.exceptions import PortalError
from portal.web.access import capability_required


@capability_required(Cap.MODEL_REGISTER, gettext_lazy("evaluate model versions"))
@require_POST
def evaluation_create(request: HttpRequest, name: str, version: int) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    upload = request.FILES.get("file")
    try:
        found = selectors.version_get(actor=actor, name=name, version=version)
        if upload is None:
            raise PortalError(_('Choose a CSV file of held-out rows with their true labels.'))
        evaluation = evaluations.evaluation_create(actor=actor, version=found, upload=upload,  # type: ignore[arg-type]
                                                   name=upload.name or "",
                                                   label_column=request.POST.get("label_column") or "label")
        messages.success(request, _("Evaluation #%(number)s of %(rows)s rows is running on a worker; its metrics "
                                    "appear on the card when it is done.") % {"number": evaluation.pk,
                                                                              "rows": evaluation.rows_total})
    except PortalError as exc:
        messages.error(request, exc.message)
    return redirect(f"/models/{name}/?v={version}#evaluation")
