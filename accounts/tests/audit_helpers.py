"""Helpers of the audit-trail tests."""

from __future__ import annotations

import time

from accounts.tests.factories import UserFactory


def staff_with_second_factor(client, **fields):
    """A staff member logged in on `client` whose session used a second factor (the admin asks for one:
    accounts.step_up)."""
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    staff = UserFactory(is_staff=True, **fields)
    TOTP.activate(staff, generate_totp_secret())
    client.force_login(staff)
    session = client.session
    session["account_authentication_methods"] = [{"method": "mfa", "type": "totp", "at": time.time()}]
    session["account_authentication_methods_user"] = str(staff.pk)
    session.save()
    return staff
