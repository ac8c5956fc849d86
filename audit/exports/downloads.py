"""One answer for a download of an export, from the REST API and from the pages alike."""

from __future__ import annotations

from django.http import HttpResponse

from audit.exports import services
from audit.exports.models import ComplianceExport

MEDIA_TYPES = {".pdf": "application/pdf", ".json": "application/json", ".csv": "text/csv",
               ".jsonl": "application/x-ndjson", ".pem": "application/x-pem-file", ".txt": "text/plain",
               ".sig": "application/json"}


def download_response(export: ComplianceExport, name: str = "") -> HttpResponse:
    """The bundle (zip) when `name` is empty, else that file of it; the PDF opens in the browser."""
    stem = f"{export.model_version.model.name}-v{export.model_version.version}-export-{export.number}"
    if not name:
        response = HttpResponse(services.export_bundle(export=export), content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{stem}.zip"'
        return response
    suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
    response = HttpResponse(services.export_file(export=export, name=name),
                            content_type=MEDIA_TYPES.get(suffix, "application/octet-stream"))
    disposition = "inline" if suffix == ".pdf" else "attachment"
    response["Content-Disposition"] = f'{disposition}; filename="{stem}-{name.replace("/", "-")}"'
    return response
