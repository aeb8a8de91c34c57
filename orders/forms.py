"""The 주문 page's filter form: the dates are checked (a bad one is an error on the page, as the API
answers 400 for it); the choice filters keep ignoring values they do not know."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

# Echoed in the message; a longer value is cut.
SHOWN_CHARACTERS = 20


class OrderDateFilterForm(forms.Form):
    start = forms.DateField(required=False, input_formats=["%Y-%m-%d"])
    end = forms.DateField(required=False, input_formats=["%Y-%m-%d"])

    messages = {
        "start": _("The start date is not a date (YYYY-MM-DD): %(value)s"),
        "end": _("The end date is not a date (YYYY-MM-DD): %(value)s"),
    }

    def __init__(self, data, **kwargs):
        super().__init__({name: (data.get(name) or "").strip() for name in ("start", "end")}, **kwargs)
        for name, message in self.messages.items():
            shown = self.data[name][:SHOWN_CHARACTERS]
            self.fields[name].error_messages["invalid"] = message % {"value": shown}

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end and end < start:
            self.add_error("end", _("The end date is before the start date."))
        return cleaned

    def error_list(self) -> list[str]:
        return [str(message) for messages in self.errors.values() for message in messages]
