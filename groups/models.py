"""Groups are read live through the gateway; nothing of theirs is stored here yet."""
