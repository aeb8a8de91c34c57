from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from .selectors import orders_page_for


@login_required
def index(request):
    """주문: the user's strategies with their positions, the weekly runs and the orders."""
    return render(request, "orders/index.html", orders_page_for(request.user))
