"""Top-level URL map: dashboard pages under /dashboard/, the REST API at the root (drop-in paths), the admin."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.i18n import set_language

from accounts.views import home
from waportal import api
from waportal.metrics import metrics

urlpatterns = [
    path("", home, name="home"),
    path("admin/", admin.site.urls),
    path("metrics", metrics, name="metrics"),
    path("i18n/setlang/", set_language, name="set_language"),
    path("accounts/", include("accounts.urls")),
    path("dashboard/", include("messaging.urls")),
    path("dashboard/groups/", include("groups.urls")),
    path("dashboard/webhooks/", include("messaging.webhooks.urls")),
    path("", api.urls),  # the NinjaAPI: (patterns, app_name, namespace)
]

if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
