import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trading_site.settings")
application = get_asgi_application()

# As in wsgi.py: without collected static files every page would answer 500, so refuse to start.
from trading_site.static_check import ensure_static_files_collected  # noqa: E402

ensure_static_files_collected()

# The KRX calendar takes seconds to build (more on a busy machine): build it while the server starts, not
# inside the first request that needs it (which has a broker budget and a worker time-out to keep).
from market.krx import krx_calendar  # noqa: E402

krx_calendar()
