"""Helpers of the audit-trail tests."""

from __future__ import annotations

from accounts.tests.factories import UserFactory
from accounts.tests.second_factor import step_up


def staff_with_second_factor(client, **fields):
    """A staff member logged in on `client` whose session used a second factor (the admin asks for one:
    accounts.step_up)."""
    staff = UserFactory(is_staff=True, **fields)
    step_up(client, staff)
    return staff
