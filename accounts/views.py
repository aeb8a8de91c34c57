from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from . import selectors, services, step_up
from .forms import BrokerAccountForm
from .models import BrokerAccount


@login_required
def broker_account_list(request):
    accounts = selectors.broker_accounts_for(request.user).filter(owner=request.user)
    return render(request, "accounts/broker_account_list.html",
                  {"accounts": accounts, "second_factor_types": step_up.second_factor_types(request.user)})


def _save_form(request, form: BrokerAccountForm, account: BrokerAccount):
    if form.is_valid():
        # Real money on, or keys added or changed: a second factor within the last minutes first
        # (StepUpMiddleware keeps this POST and replays it after the re-authentication).
        step_up.require_step_up_for_broker_change(request, account, form.changes())
        services.save_broker_account(account, **form.changes())
        messages.success(request, _("Broker account saved."))
        return redirect("accounts:broker_account_list")
    return render(request, "accounts/broker_account_form.html", {"form": form, "account": account})


@login_required
def broker_account_create(request):
    account = BrokerAccount(owner=request.user)
    form = BrokerAccountForm(request.POST or None, instance=account)
    if request.method == "POST":
        return _save_form(request, form, account)
    return render(request, "accounts/broker_account_form.html", {"form": form, "account": account})


@login_required
def broker_account_edit(request, pk: int):
    # Editing is for the owner only, staff included: nobody changes another user's credentials.
    account = selectors.broker_account_for(request.user, pk)
    if account.owner_id != request.user.pk:
        return render(request, "404.html", status=404)
    form = BrokerAccountForm(request.POST or None, instance=account)
    if request.method == "POST":
        return _save_form(request, form, account)
    return render(request, "accounts/broker_account_form.html", {"form": form, "account": account})


@login_required
@require_POST
def broker_account_delete(request, pk: int):
    account = selectors.broker_account_for(request.user, pk)
    if account.owner_id != request.user.pk:
        return render(request, "404.html", status=404)
    try:
        services.delete_broker_account(account)
    except services.BrokerAccountInUse as error:
        messages.error(request, str(error))
        return redirect("accounts:broker_account_list")
    messages.success(request, _("Broker account deleted."))
    return redirect("accounts:broker_account_list")


@login_required
def remove_passkey(request, pk: int):
    """allauth's passkey removal, refused while it is the user's last second factor and real money is
    on (allauth asks the MFA adapter only when an authenticator app is turned off)."""
    from allauth.mfa.models import Authenticator
    from allauth.mfa.webauthn.views import remove_webauthn

    from .adapters import leaves_real_money_without_second_factor

    authenticator = Authenticator.objects.filter(user=request.user, type=Authenticator.Type.WEBAUTHN, pk=pk).first()
    if request.method == "POST" and authenticator and leaves_real_money_without_second_factor(authenticator):
        messages.error(request, _("Real-money trading is on for one of your broker accounts: switch it off "
                                  "first, then turn off the second factor."))
        return redirect("mfa_list_webauthn")
    return remove_webauthn(request, pk=pk)


# --- 보안 활동 (security activity): the user's own audit trail ------------------------------------------
SECURITY_PAGE_SIZE = 30


@login_required
def security_activity(request):
    """The user's own security events, newest first, paginated; CSV export beside it."""
    from django.core.paginator import Paginator

    from . import audit

    page_obj = Paginator(audit.security_events_for(request.user), SECURITY_PAGE_SIZE).get_page(request.GET.get("page"))
    events = []
    for event in page_obj.object_list:
        summary = audit.event_summary(event)
        device = audit.device_label(event.user_agent) if event.user_agent else ""
        events.append((event, summary, "" if device and device in summary else device))
    return render(request, "accounts/security_activity.html", {"page_obj": page_obj, "events": events})


@login_required
def security_activity_export(request):
    """All of the user's own security events as CSV."""
    from django.http import HttpResponse
    from django.utils import timezone

    from . import audit

    response = HttpResponse(content_type="text/csv; charset=utf-8")
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="security-activity-{stamp}.csv"'
    response["Cache-Control"] = "no-store"
    audit.write_csv(audit.security_events_for(request.user), response)
    return response
