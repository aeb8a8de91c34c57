from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


def fill_notice_receiver(sender, account_id, notice, source, **kwargs):
    """market.streaming.signals.fill_notice_received → the order's fills (orders.fill_notices). An
    optional `moment` (aware) dates the notice when the sender's clock is not now (the paper broker)."""
    from .fill_notices import apply_fill_notice

    return apply_fill_notice(account_id, notice, source=source, moment=kwargs.get("moment"))


class OrdersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "orders"
    verbose_name = _("Orders")

    def ready(self):
        # Register the Celery tasks in every process, the web server's included: `controls` queues the
        # alert notification by the task's name (it does not import the tasks that call it), and Celery
        # itself imports the tasks modules only in a worker.
        from market.streaming.signals import fill_notice_received

        from . import tasks  # noqa: F401

        # Own-order notices from the streamer (KIS) and the paper broker update the orders in every process
        # that receives them.
        fill_notice_received.connect(fill_notice_receiver, dispatch_uid="orders.apply_fill_notice")
