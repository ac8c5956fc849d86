from django.urls import path

from audit.exports import apis

urlpatterns = [
    path("models/<slug:name>/versions/<int:version>/exports", apis.ExportListCreateApi.as_view(),
         name="api-version-exports"),
    path("exports", apis.ExportListApi.as_view(), name="api-exports"),
    path("exports/schema", apis.ExportSchemaApi.as_view(), name="api-export-schema"),
    path("exports/<int:pk>", apis.ExportDetailApi.as_view(), name="api-export"),
    path("exports/<int:pk>/download", apis.ExportDownloadApi.as_view(), name="api-export-download"),
]
