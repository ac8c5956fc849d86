from django.urls import path

from audit.fairness.ui import views

urlpatterns = [
    path("models/<slug:name>/versions/<int:version>/bias/", views.version_reports, name="fairness-version"),
    path("bias-reports/<int:pk>/", views.report_detail, name="fairness-report"),
    path("settings/fairness/", views.policy, name="fairness-policy"),
]
