"""What each audit-log action code means, in words a person reads ("Sent a message", not `message.queue`).

The codes stay as they are in the database and the filter; only the page shows these. An unknown code
(a new action nobody named yet) is shown as itself."""

from django.utils.translation import gettext_lazy as _

LABELS = {
    "admin.device.change": _("Changed a number in the admin site"),
    "api_key.create": _("Created an API key"),
    "api_key.revoke": _("Revoked an API key"),
    "device.create": _("Added a number"),
    "device.link": _("Started linking a number by QR code"),
    "device.pair": _("Started linking a number by pairing code"),
    "device.logout": _("Logged a number out"),
    "device.reconnect": _("Reconnected a number"),
    "device.remove": _("Removed a number"),
    "device.rename": _("Renamed a number"),
    "group.create": _("Created a group"),
    "group.join": _("Joined a group"),
    "group.leave": _("Left a group"),
    "group.name": _("Renamed a group"),
    "group.topic": _("Changed a group's description"),
    "group.photo": _("Changed a group's picture"),
    "group.announce": _("Changed who may send in a group"),
    "group.locked": _("Changed who may edit a group's info"),
    "group.invite_link.reset": _("Reset a group's invite link"),
    "group.participants.add": _("Added people to a group"),
    "group.participants.remove": _("Removed people from a group"),
    "group.participants.promote": _("Made people group admins"),
    "group.participants.demote": _("Took group admin from people"),
    "group.requests.approve": _("Approved requests to join a group"),
    "group.requests.reject": _("Rejected requests to join a group"),
    "invitation.create": _("Invited someone"),
    "invitation.accept": _("Accepted an invitation"),
    "invitation.revoke": _("Withdrew an invitation"),
    "member.leave": _("Left the organization"),
    "member.remove": _("Removed a member"),
    "member.role_change": _("Changed a member's role"),
    "message.queue": _("Sent a message"),
    "message.resend": _("Sent a message again"),
    "message.edit": _("Edited a message"),
    "message.revoke": _("Deleted a message for everyone"),
    "message.delete_for_me": _("Deleted a message for this number"),
    "message.react": _("Reacted to a message"),
    "message.read": _("Marked messages read"),
    "message.star": _("Starred a message"),
    "message.unstar": _("Unstarred a message"),
    "newsletter.unfollow": _("Unfollowed a channel"),
    "organization.create": _("Created the organization"),
    "organization.rename": _("Renamed the organization"),
    "organization.history_days": _("Chose how much history newly linked numbers import"),
    "profile.avatar": _("Changed a number's profile picture"),
    "profile.presence": _("Changed a number's online status"),
    "profile.push_name": _("Changed a number's display name"),
    "webhook.create": _("Added a webhook"),
    "webhook.update": _("Changed a webhook"),
    "webhook.delete": _("Deleted a webhook"),
    "webhook.pause": _("Paused a webhook"),
    "webhook.resume": _("Resumed a webhook"),
    "webhook.rotate_secret": _("Changed a webhook's secret"),
    "webhook.test": _("Sent a webhook test"),
    "webhook.redeliver": _("Sent a webhook delivery again"),
    "chat.pin": _("Pinned a chat"),
    "chat.unpin": _("Unpinned a chat"),
    "chat.archive": _("Archived a chat"),
    "chat.unarchive": _("Unarchived a chat"),
    "chat.label": _("Put a label on a chat"),
    "chat.unlabel": _("Took a label off a chat"),
    "chat.assign": _("Assigned a chat to a member"),
    "chat.unassign": _("Unassigned a chat"),
    "label.create": _("Made a label"),
    "label.update": _("Changed a label"),
    "label.delete": _("Deleted a label"),
}


def label(action: str) -> str:
    return str(LABELS.get(action, action))


# What an entry is about (its `object_type`, a model's label), as a word; a kind not named here is not shown.
OBJECT_TYPES = {
    "accounts.organization": _("Organization"),
    "accounts.membership": _("Member"),
    "accounts.invitation": _("Invitation"),
    "accounts.apikey": _("API key"),
    "messaging.device": _("Number"),
    "messaging.message": _("Message"),
    "messaging.chat": _("Chat"),
    "messaging.label": _("Label"),
    "messaging.webhookendpoint": _("Webhook"),
    "groups.group": _("Group"),
}


def object_type_label(object_type: str) -> str:
    return str(OBJECT_TYPES.get(object_type, ""))
