from celery import shared_task


@shared_task(name="trading_site.ping")
def ping() -> str:
    """A round trip through the broker: proves a worker is consuming this site's queue."""
    return "pong"
