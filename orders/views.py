"""주문 page and the dashboard's HTMX actions (kill switch, alert resolution). Thin: reads come from
`selectors`, every change goes through the service modules (`controls`, `reconciliation`, ...)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseBadRequest, HttpResponseForbidden
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_safe

from accounts.step_up import SensitiveAction, require_step_up
from market.gateway import user_message_for

from . import controls, reconciliation, selectors
from .forms import OrderDateFilterForm
from .models import OrderReason, OrderSide, OrderStatus

PAGE_SIZE = 50


def order_filters(params) -> tuple[dict, list[str]]:
    """The 주문 page's filters from the query string, and the errors of its dates (a bad or reversed
    date is an error, as in the API); unknown status, side or reason values are ignored."""
    status = params.get("status") or None
    side = params.get("side") or None
    reason = params.get("reason") or None
    code = (params.get("code") or "").strip().upper()[:12] or None
    dates = OrderDateFilterForm(params)
    valid = dates.is_valid()
    filters = {
        "status": status if status in OrderStatus.values else None,
        "side": side if side in OrderSide.values else None,
        "reason": reason if reason in OrderReason.values else None,
        "code": code,
        "start": dates.cleaned_data.get("start") if valid else None,
        "end": dates.cleaned_data.get("end") if valid else None,
    }
    return filters, ([] if valid else dates.error_list())


@login_required
@require_safe
def index(request):
    """주문: filters (HTMX swaps only the orders list), the orders with their fills and the broker's
    messages; below, the strategies with their positions and the weekly runs. A bad date shows its
    error instead of the list (400; 200 to HTMX, which swaps only successful answers)."""
    filters, filter_errors = order_filters(request.GET)
    orders = selectors.orders_for(request.user, **filters).prefetch_related("fills")
    page_obj = Paginator(orders.none() if filter_errors else orders, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "filters": filters,
        "filter_errors": filter_errors,
        "page_obj": page_obj,
        "orders": page_obj.object_list,
        "query": query.urlencode(),
        "status_choices": OrderStatus.choices,
        "side_choices": OrderSide.choices,
        "reason_choices": OrderReason.choices,
    }
    status = 400 if filter_errors and not request.htmx else 200
    if request.htmx and request.htmx.target == "orders-list":
        return render(request, "orders/partials/orders_list.html", context, status=status)
    context.update(selectors.orders_page_for(request.user))
    return render(request, "orders/index.html", context, status=status)


def _kill_switch_response(request):
    context = {"controls": selectors.trading_controls_for(request.user)}
    if request.htmx:
        return render(request, "orders/partials/kill_switch.html", context)
    return redirect("dashboard")


@login_required
@require_POST
def trading_control(request):
    """Halt or resume trading: `action=halt|resume`, `account=<id>` (one of yours) or empty for the
    global switch (staff only), `reason`. HTMX gets the kill-switch card back."""
    action = request.POST.get("action")
    if action not in ("halt", "resume"):
        return HttpResponseBadRequest(_("Unknown action."))
    account = None
    if request.POST.get("account"):
        account = selectors.own_account(request.user, request.POST["account"])
        if account is None:
            raise Http404
    elif not request.user.is_staff:
        return HttpResponseForbidden(_("Only staff can switch the global kill switch."))
    reason = (request.POST.get("reason") or "").strip()[:500]
    if action == "halt":
        controls.halt_trading(account=account, user=request.user, reason=reason or _("Halted from the dashboard."))
        if not request.htmx:
            messages.warning(request, _("Trading halted."))
    else:
        require_step_up(request, SensitiveAction.LIFT_KILL_SWITCH)  # → the second factor, then back
        controls.resume_trading(account=account, user=request.user)
        if not request.htmx:
            messages.success(request, _("Trading resumed."))
    return _kill_switch_response(request)


@login_required
@require_POST
def resolve_alert(request, pk: int):
    """Resolve one open alert of your accounts (with an optional note). HTMX gets the alerts card back."""
    alert = selectors.alert_for(request.user, pk)
    if alert is None:
        raise Http404
    controls.resolve_alert(alert, user=request.user, note=(request.POST.get("note") or "").strip()[:1000])
    if request.htmx:
        return render(request, "orders/partials/alerts.html", {"alerts": selectors.open_alerts_for(request.user)})
    messages.success(request, _("Alert resolved."))
    return redirect("dashboard")


@login_required
@require_POST
def decide_unknown_order(request, pk: int):
    """The owner settles an order whose broker answer was lost and that reconciliation left to a person
    (its alert lists the look-alike broker orders): `action=adopt` with `order_no` (that broker order is
    this one) or `action=not_received` (it never reached the broker). HTMX gets the alerts card back."""
    alert = selectors.alert_for(request.user, pk)
    order = selectors.own_order(request.user, (alert.details or {}).get("order")) if alert else None
    if order is None:
        raise Http404
    action = request.POST.get("action")
    try:
        if action == "adopt":
            reconciliation.adopt_broker_order(order, (request.POST.get("order_no") or "").strip()[:20], user=request.user)
        elif action == "not_received":
            reconciliation.declare_order_not_received(order, user=request.user)
        else:
            return HttpResponseBadRequest(_("Unknown action."))
    except reconciliation.OrderDecisionError as error:
        if request.htmx:
            return HttpResponseBadRequest(str(error))
        messages.error(request, str(error))
        return redirect("dashboard")
    except reconciliation.BROKER_READ_ERRORS as error:
        message = _("The broker's orders could not be read: %(error)s") % {"error": user_message_for(error)}
        if request.htmx:
            return HttpResponseBadRequest(message)
        messages.error(request, message)
        return redirect("dashboard")
    if request.htmx:
        return render(request, "orders/partials/alerts.html", {"alerts": selectors.open_alerts_for(request.user)})
    messages.success(request, _("Order settled."))
    return redirect("dashboard")
