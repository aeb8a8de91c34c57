from __future__ import annotations

import copy

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from .models import BrokerAccount
from .services import apply_broker_account_changes

SECRET_HELP = _("Stored encrypted. Leave blank to keep the stored value.")


class BrokerAccountForm(forms.ModelForm):
    """Secrets are write-only: the widgets never render a stored value back."""

    app_key = forms.CharField(label=_("app key"), required=False, widget=forms.PasswordInput(render_value=False))
    app_secret = forms.CharField(
        label=_("app secret"), required=False, widget=forms.PasswordInput(render_value=False)
    )
    account_number = forms.CharField(
        label=_("account number"),
        required=False,
        max_length=8,
        widget=forms.PasswordInput(render_value=False, attrs={"inputmode": "numeric", "autocomplete": "off"}),
    )

    confirm_live_trading = forms.BooleanField(
        label=_("I understand that orders from this real account use real money."),
        required=False,
        help_text=_("Required before a real account can send orders. Unticking it stops real orders."),
    )

    class Meta:
        model = BrokerAccount
        fields = ["name", "mode", "app_key", "app_secret", "account_number", "product_code", "hts_id", "is_default"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        editing = bool(self.instance and self.instance.pk)
        self.fields["confirm_live_trading"].initial = bool(self.instance.live_trading_confirmed_at)
        for name in ("app_key", "app_secret", "account_number"):
            self.fields[name].initial = ""
            if editing and getattr(self.instance, name):
                self.fields[name].help_text = SECRET_HELP
        # A paper account has no account number: no "Stored:" note about an empty value then.
        if editing and self.instance.account_number:
            self.fields["account_number"].help_text = _("Stored: %(masked)s. Leave blank to keep it.") % {
                "masked": self.instance.masked_account_number
            }

    def _post_clean(self):
        # Validate the account as the service will save it: a blank secret keeps the stored one.
        # The instance itself is left untouched; the service applies the changes on save.
        candidate = apply_broker_account_changes(copy.copy(self.instance), self.changes())
        try:
            candidate.full_clean()
        except ValidationError as exc:
            self._update_errors(exc)

    def changes(self) -> dict:
        names = [*self._meta.fields, "confirm_live_trading"]
        return {name: self.cleaned_data[name] for name in names if name in self.cleaned_data}
