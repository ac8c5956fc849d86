from django.urls import path

from audit.exports.ui import views

urlpatterns = [
    path("models/<slug:name>/versions/<int:version>/exports/", views.version_exports, name="exports-version"),
    path("exports/", views.export_list, name="exports"),
    path("exports/<int:pk>/", views.export_detail, name="export-detail"),
    path("exports/<int:pk>/download/", views.export_download, name="export-download"),
]
