from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OrdersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "orders"
    verbose_name = _("Orders")

    def ready(self):
        # Register the Celery tasks in every process, the web server's included: `controls` queues the
        # alert notification by the task's name (it does not import the tasks that call it), and Celery
        # itself imports the tasks modules only in a worker.
        from . import tasks  # noqa: F401
