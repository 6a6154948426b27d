"""Dashboard pages of groups (under /dashboard/groups/)."""

from django.urls import path

from groups import views

app_name = "groups"

urlpatterns = [
    path("", views.group_index, name="index"),
    path("<int:device_id>/", views.group_list, name="list"),
    path("<int:device_id>/create/", views.group_create, name="create"),
    path("<int:device_id>/join/", views.group_join, name="join"),
    path("<int:device_id>/g/<str:group_id>/", views.group_detail, name="detail"),
    path("<int:device_id>/g/<str:group_id>/participants/", views.group_participants, name="participants"),
    path("<int:device_id>/g/<str:group_id>/requests/", views.group_requests, name="requests"),
    path("<int:device_id>/g/<str:group_id>/settings/<str:setting>/", views.group_settings, name="settings"),
    path("<int:device_id>/g/<str:group_id>/photo/", views.group_photo, name="photo"),
    path("<int:device_id>/g/<str:group_id>/invite/", views.group_invite, name="invite"),
    path("<int:device_id>/g/<str:group_id>/leave/", views.group_leave, name="leave"),
]
