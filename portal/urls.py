from django.urls import include, path
from django.views.i18n import JavaScriptCatalog
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from inference.urls import openai_urlpatterns
from portal.health import healthz

handler400 = "portal.platform.exceptions.handler400"
handler404 = "portal.platform.exceptions.handler404"
handler500 = "portal.platform.exceptions.handler500"

api_v1 = [
    path("", include("portal.accounts.urls")),
    path("audit/", include("audit.console.urls")),
    path("", include("inference.urls")),
    path("", include("audit.fairness.urls")),
    path("", include("audit.exports.urls")),
]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("api/v1/", include(api_v1)),
    path("v1/", include(openai_urlpatterns)),  # OpenAI's API: base_url="http://host/v1"
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # the words of the portal's scripts (chat.js), in the request's language
    path("jsi18n/", JavaScriptCatalog.as_view(packages=["portal"]), name="javascript-catalog"),
    # the split view serves its script as a file: the Content-Security-Policy allows no inline script
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("audit/", include("audit.console.ui_urls")),
    path("", include("audit.fairness.ui.urls")),
    path("", include("audit.exports.ui.urls")),
    path("", include("inference.ui.urls")),
    path("", include("portal.ui.urls")),
]
