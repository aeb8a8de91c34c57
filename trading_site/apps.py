from django.apps import AppConfig


class TradingSiteConfig(AppConfig):
    name = "trading_site"
    verbose_name = "KIS Weekly Trader"

    def ready(self):
        from . import static_check  # noqa: F401  (registers the collected-static-files deploy check)
