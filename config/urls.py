from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from agents.demo_api import demo_order
from config.api import handlers
from config.health import healthz, readyz
from config.metrics import metrics_view

urlpatterns = [
    path("healthz", healthz),
    path("readyz", readyz),
    path("metrics", metrics_view),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/", include("conversations.api.urls")),
    path("api/", include("agents.api.urls")),
    path("tenants/<str:tenant>/api/v2/", include("conversations.api.v2_urls")),
    path("tenants/<str:tenant>/api/v2/", include("files.api.urls")),
]
if settings.CONDUET_DEMO_API:  # the order service of the agentic demo (rundemo)
    urlpatterns.append(path("demo/orders/<str:order_id>", demo_order))

handler404 = handlers.not_found
handler500 = handlers.server_error
