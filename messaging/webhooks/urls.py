"""Dashboard pages of webhook endpoints and their delivery log (under /dashboard/webhooks/)."""

from django.urls import path

from messaging.webhooks import pages as views

app_name = "webhooks"

urlpatterns = [
    path("", views.endpoint_list, name="list"),
    path("new/", views.endpoint_create, name="create"),
    path("<int:endpoint_id>/", views.endpoint_detail, name="detail"),
    path("<int:endpoint_id>/rotate-secret/", views.endpoint_rotate_secret, name="rotate_secret"),
    path("<int:endpoint_id>/test/", views.endpoint_test, name="test"),
    path("<int:endpoint_id>/resume/", views.endpoint_resume, name="resume"),
    path("<int:endpoint_id>/delete/", views.endpoint_delete, name="delete"),
    path("<int:endpoint_id>/deliveries/<int:delivery_id>/", views.delivery_detail, name="delivery"),
    path(
        "<int:endpoint_id>/deliveries/<int:delivery_id>/redeliver/",
        views.delivery_redeliver,
        name="redeliver",
    ),
]
