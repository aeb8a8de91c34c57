from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from . import selectors, services
from .forms import BrokerAccountForm
from .models import BrokerAccount


@login_required
def broker_account_list(request):
    accounts = selectors.broker_accounts_for(request.user).filter(owner=request.user)
    return render(request, "accounts/broker_account_list.html", {"accounts": accounts})


def _save_form(request, form: BrokerAccountForm, account: BrokerAccount):
    if form.is_valid():
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
