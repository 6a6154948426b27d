from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"
    verbose_name = "Messaging"

    def ready(self):
        from django.db.models.signals import post_migrate

        from messaging import live, sqlite_fts, tallies

        live.connect_signals()
        post_migrate.connect(sqlite_fts.ensure_after_migrate, sender=self)
        post_migrate.connect(tallies.ensure_after_migrate, sender=self)
