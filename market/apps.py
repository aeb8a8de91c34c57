from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MarketConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "market"
    verbose_name = _("Stocks")

    def ready(self):
        from . import signals  # noqa: F401  (connects the token revocation on account removal)
