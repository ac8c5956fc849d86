from django.urls import path

from audit.console import apis

urlpatterns = [
    path("entries", apis.EntryListApi.as_view(), name="api-audit-entries"),
    path("entries/<int:index>", apis.EntryDetailApi.as_view(), name="api-audit-entry"),
    path("proofs/inclusion", apis.InclusionProofApi.as_view(), name="api-audit-inclusion"),
    path("proofs/consistency", apis.ConsistencyProofApi.as_view(), name="api-audit-consistency"),
    path("checkpoints", apis.CheckpointListCreateApi.as_view(), name="api-audit-checkpoints"),
    path("public-key", apis.PublicKeyApi.as_view(), name="api-audit-public-key"),
    path("verification", apis.VerificationApi.as_view(), name="api-audit-verification"),
    path("export", apis.ExportApi.as_view(), name="api-audit-export"),
    path("erasures", apis.ErasureCreateApi.as_view(), name="api-audit-erasures"),
    path("redaction-rules", apis.RedactionRuleApi.as_view(), name="api-audit-redaction-rules"),
    path("redaction-rules/<int:pk>", apis.RedactionRuleDetailApi.as_view(), name="api-audit-redaction-rule"),
    path("redaction-preview", apis.RedactionPreviewApi.as_view(), name="api-audit-redaction-preview"),
]
