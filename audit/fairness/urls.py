from django.urls import path

from audit.fairness import apis

urlpatterns = [
    path("models/<slug:name>/versions/<int:version>/bias-reports", apis.BiasReportListCreateApi.as_view(),
         name="api-bias-reports"),
    path("bias-reports/<int:pk>", apis.BiasReportDetailApi.as_view(), name="api-bias-report"),
    path("bias-reports/<int:pk>/download", apis.BiasReportDownloadApi.as_view(), name="api-bias-report-download"),
    path("fairness-policy", apis.FairnessPolicyApi.as_view(), name="api-fairness-policy"),
]
