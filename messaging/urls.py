"""Dashboard pages of linked numbers, profile, compose, inbox and the simulated phone (under /dashboard/)."""

from django.urls import path

from messaging.views import avatars, compose, devices, inbox, labels, profile, sandbox
from messaging.views import device_settings as settings_views

app_name = "messaging"

urlpatterns = [
    path("", devices.device_list, name="devices"),
    path("devices/new/", devices.device_create, name="device_create"),
    path("devices/<int:device_id>/", devices.device_detail, name="device"),
    path("devices/<int:device_id>/live/", devices.device_fragment, name="device_fragment"),
    path("devices/<int:device_id>/history/", devices.device_history, name="device_history"),
    path("devices/<int:device_id>/link/", devices.device_link, name="device_link"),
    path("devices/<int:device_id>/pair/", devices.device_pair, name="device_pair"),
    path("devices/<int:device_id>/reconnect/", devices.device_reconnect, name="device_reconnect"),
    path("devices/<int:device_id>/logout/", devices.device_logout, name="device_logout"),
    path("devices/<int:device_id>/rename/", devices.device_rename, name="device_rename"),
    path("devices/<int:device_id>/remove/", devices.device_remove, name="device_remove"),
    path("devices/<int:device_id>/settings/", settings_views.device_settings, name="device_settings"),
    path(
        "devices/<int:device_id>/settings/save/",
        settings_views.device_settings_save,
        name="device_settings_save",
    ),
    path("devices/<int:device_id>/profile/", profile.profile, name="profile"),
    path(
        "devices/<int:device_id>/profile/section/<str:section>/",
        profile.profile_section,
        name="profile_section",
    ),
    path("devices/<int:device_id>/profile/lookup/", profile.profile_lookup, name="profile_lookup"),
    path("devices/<int:device_id>/profile/avatar/", profile.profile_avatar, name="profile_avatar"),
    path("devices/<int:device_id>/profile/push-name/", profile.profile_push_name, name="profile_push_name"),
    path("devices/<int:device_id>/profile/presence/", profile.profile_presence, name="profile_presence"),
    path("devices/<int:device_id>/profile/unfollow/", profile.profile_unfollow, name="profile_unfollow"),
    path("devices/<int:device_id>/compose/", compose.compose, name="compose"),
    path("devices/<int:device_id>/chats/", inbox.chat_list, name="inbox"),
    path("devices/<int:device_id>/chats/<int:chat_id>/", inbox.conversation, name="conversation"),
    path("devices/<int:device_id>/chats/<int:chat_id>/send/", inbox.chat_send, name="chat_send"),
    path("devices/<int:device_id>/chats/<int:chat_id>/seen/", inbox.chat_seen, name="chat_seen"),
    path(
        "devices/<int:device_id>/chats/<int:chat_id>/messages/<int:message_id>/download/",
        inbox.message_download,
        name="message_download",
    ),
    path(  # (before the actions: {% message_url message 'menu' %} gives this path)
        "devices/<int:device_id>/chats/<int:chat_id>/messages/<int:message_id>/menu/",
        inbox.message_menu,
        name="message_menu",
    ),
    path(
        "devices/<int:device_id>/chats/<int:chat_id>/messages/<int:message_id>/<str:action>/",
        inbox.message_action,
        name="message_action",
    ),
    path("devices/<int:device_id>/avatar/<str:jid>/", avatars.avatar, name="avatar"),
    path(
        "devices/<int:device_id>/chats/<int:chat_id>/organise/<str:action>/",
        labels.chat_organise,
        name="chat_organise",
    ),
    path("devices/<int:device_id>/labels/", labels.label_list, name="labels"),
    path("devices/<int:device_id>/labels/new/", labels.label_create, name="label_create"),
    path("devices/<int:device_id>/labels/<int:label_id>/", labels.label_edit, name="label_edit"),
    path("devices/<int:device_id>/labels/<int:label_id>/delete/", labels.label_delete, name="label_delete"),
    path("sandbox/", sandbox.sandbox_panel, name="sandbox"),
    path("sandbox/<int:device_id>/scan/", sandbox.sandbox_scan, name="sandbox_scan"),
    path("sandbox/<int:device_id>/code/", sandbox.sandbox_enter_code, name="sandbox_code"),
    path("sandbox/<int:device_id>/send/", sandbox.sandbox_peer_send, name="sandbox_send"),
    path("sandbox/<int:device_id>/number/", sandbox.sandbox_peer_number, name="sandbox_number"),
    path("sandbox/<int:device_id>/phone/", sandbox.sandbox_phone, name="sandbox_phone"),
    path("sandbox/<int:device_id>/join-request/", sandbox.sandbox_join_request, name="sandbox_join_request"),
    path(
        "sandbox/<int:device_id>/join-approval/", sandbox.sandbox_join_approval, name="sandbox_join_approval"
    ),
    path("sandbox/<int:device_id>/call/", sandbox.sandbox_peer_call, name="sandbox_call"),
    path("sandbox/<int:device_id>/label/", sandbox.sandbox_phone_label, name="sandbox_label"),
]
