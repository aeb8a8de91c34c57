from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"
    # Not "Accounts": allauth's e-mail addresses section is called that (계정) too.
    verbose_name = _("Users and broker accounts")

    def ready(self) -> None:
        # The audit trail's receivers: logins, the second factor, schedule edits (accounts.signals).
        from . import signals

        signals.connect()
