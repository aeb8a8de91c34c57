from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_POST

from accounts.selectors import broker_account_for

from .services import test_broker_connection


@login_required
def index(request):
    return render(request, "market/index.html")


@login_required
@require_POST
def connection_test(request, pk: int):
    """HTMX: the connection-test result for one of the user's broker accounts."""
    account = broker_account_for(request.user, pk)
    if account.owner_id != request.user.pk:
        return render(request, "404.html", status=404)
    result = test_broker_connection(account)
    return render(request, "market/partials/connection_test.html", {"account": account, "result": result})
