from django.urls import path

from audit.console import views

urlpatterns = [
    path("", views.audit_log, name="audit-log"),
    path("entries/<int:index>/", views.audit_entry, name="audit-entry"),
    path("verify/", views.audit_verify_now, name="audit-verify"),
    path("verification/", views.audit_verification_status, name="audit-verification"),
    path("checkpoint/", views.audit_checkpoint_now, name="audit-checkpoint"),
    path("redaction/", views.redaction_rules, name="audit-redaction"),
]
