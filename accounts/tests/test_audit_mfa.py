"""The audit trail of the second factor (allauth.mfa's own pages) and of schedule edits in the admin."""

from __future__ import annotations

import re

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import SECRET_SESSION_KEY, format_hotp_value, hotp_value
from django.urls import reverse
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from accounts.models import SecurityEvent
from accounts.models import SecurityEventKind as Kind
from accounts.tests.audit_helpers import staff_with_second_factor
from trading_site.schedules import Schedule, install_schedules

pytestmark = pytest.mark.django_db

HOME = "198.51.100.7"
AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"


def kinds_since(pk: int = 0) -> list[tuple[str, dict]]:
    return [(event.kind, event.detail) for event in SecurityEvent.objects.filter(pk__gt=pk).order_by("pk")]


def last_pk() -> int:
    return SecurityEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def current_code(secret: str) -> str:
    import time

    from allauth.mfa import app_settings

    return format_hotp_value(hotp_value(secret, int(time.time()) // app_settings.TOTP_PERIOD))


@pytest.fixture
def web(client):
    """Every request of this client from one address and browser."""
    client.defaults.update(REMOTE_ADDR=HOME, HTTP_USER_AGENT=AGENT)
    return client


@pytest.fixture
def verified(user):
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    return user


def activate_totp(web, user, password, capture) -> str:
    assert web.post(reverse("account_login"), {"login": user.username, "password": password}).status_code == 302
    assert web.post(reverse("account_reauthenticate"), {"password": password}).status_code == 302
    web.get(reverse("mfa_activate_totp"))
    secret = web.session[SECRET_SESSION_KEY]
    with capture(execute=True):  # allauth tells of a new authenticator once its transaction commits
        response = web.post(reverse("mfa_activate_totp"), {"code": current_code(secret)})
    assert response.status_code == 302, response.content.decode()[:2000]
    return secret


def test_a_second_factor_added_used_and_removed(web, verified, password, django_capture_on_commit_callbacks):
    user = verified
    activate_totp(web, user, password, django_capture_on_commit_callbacks)
    totp = Authenticator.objects.get(user=user, type=Authenticator.Type.TOTP)
    codes = Authenticator.objects.get(user=user, type=Authenticator.Type.RECOVERY_CODES)
    [(login, _)] = [(k, d) for k, d in kinds_since() if k == Kind.LOGIN_SUCCEEDED]
    assert kinds_since()[1:] == [
        (Kind.MFA_ADDED, {"type": "totp", "authenticator": totp.pk}),
        (Kind.RECOVERY_CODES_GENERATED, {"type": "recovery_codes", "authenticator": codes.pk}),
    ]
    added = SecurityEvent.objects.get(kind=Kind.MFA_ADDED)
    assert (added.user, added.ip_address, added.user_agent) == (user, HOME, AGENT)

    # a login with a wrong second-factor code, then with a recovery code
    web.logout()
    mark = last_pk()
    response = web.post(reverse("account_login"), {"login": user.username, "password": password})
    assert response.status_code == 302 and response.url == reverse("mfa_authenticate")
    web.post(reverse("mfa_authenticate"), {"code": "000000"})
    recovery_code = codes.wrap().get_unused_codes()[0]
    assert web.post(reverse("mfa_authenticate"), {"code": recovery_code}).status_code == 302
    events = kinds_since(mark)
    assert [kind for kind, _ in events] == [Kind.LOGIN_FAILED, Kind.RECOVERY_CODE_USED, Kind.LOGIN_SUCCEEDED]
    assert events[0][1] == {"reason": "second_factor", "type": "totp", "reauthentication": False}
    assert events[2][1]["methods"] == ["password", "mfa:recovery_codes"]
    assert recovery_code not in str(events)

    # new recovery codes, then the authenticator app turned off (its recovery codes go with it)
    assert web.post(reverse("account_reauthenticate"), {"password": password}).status_code == 302
    mark = last_pk()
    with django_capture_on_commit_callbacks(execute=True):
        response = web.post(reverse("mfa_generate_recovery_codes"))
    assert response.status_code == 302 and "reauthenticate" not in response.url
    with django_capture_on_commit_callbacks(execute=True):
        response = web.post(reverse("mfa_deactivate_totp"))
    assert response.status_code == 302 and "reauthenticate" not in response.url
    assert [(kind, detail["type"]) for kind, detail in kinds_since(mark)] == [
        (Kind.RECOVERY_CODES_GENERATED, "recovery_codes"), (Kind.MFA_REMOVED, "totp"),
        (Kind.MFA_REMOVED, "recovery_codes")]
    assert not Authenticator.objects.filter(user=user).exists()


def test_a_rejected_activation_code_records_nothing(web, verified, password, django_capture_on_commit_callbacks):
    assert web.post(reverse("account_login"), {"login": verified.username, "password": password}).status_code == 302
    assert web.post(reverse("account_reauthenticate"), {"password": password}).status_code == 302
    web.get(reverse("mfa_activate_totp"))
    mark = last_pk()
    with django_capture_on_commit_callbacks(execute=True):
        response = web.post(reverse("mfa_activate_totp"), {"code": "000000"})
    assert response.status_code == 200 and kinds_since(mark) == []


# --- schedules ---------------------------------------------------------------------------------------------
def test_schedule_edits_in_the_admin_are_recorded_for_the_staff_member(client):
    install_schedules([Schedule(name="orders: weekly entry", task="orders.weekly_entry", minute="5", hour="9",
                                day_of_week="1-5")])
    assert not SecurityEvent.objects.filter(kind=Kind.SCHEDULE_CHANGED).exists()  # a command: nothing
    staff = staff_with_second_factor(client, is_superuser=True)
    task = PeriodicTask.objects.get(name="orders: weekly entry")
    crontab = task.crontab

    response = client.post(reverse("admin:django_celery_beat_crontabschedule_change", args=[crontab.pk]), {
        "minute": "10", "hour": "9", "day_of_week": "1-5", "day_of_month": "*", "month_of_year": "*",
        "timezone": "Asia/Seoul", "periodictask_set-TOTAL_FORMS": "0", "periodictask_set-INITIAL_FORMS": "0"},
        REMOTE_ADDR=HOME)
    assert response.status_code == 302, re.findall(r'<ul class="errorlist[^"]*"[^>]*>.*?</ul>', response.content.decode(), re.S)
    response = client.post(reverse("admin:django_celery_beat_periodictask_changelist"), {
        "action": "disable_tasks", "_selected_action": [task.pk]}, REMOTE_ADDR=HOME)
    assert response.status_code == 302
    changed, disabled = SecurityEvent.objects.filter(kind=Kind.SCHEDULE_CHANGED).order_by("pk")
    assert (changed.user, changed.actor, changed.ip_address) == (staff, None, HOME)
    assert changed.detail["model"] == "crontabschedule" and changed.detail["action"] == "changed"
    assert "10 9" in changed.detail["object"]
    assert disabled.user == staff and disabled.detail == {
        "model": "periodictask", "action": "disable_tasks", "ids": [task.pk], "tasks": ["orders: weekly entry"]}
    CrontabSchedule.objects.filter(pk=crontab.pk).update(minute="5")
    PeriodicTask.objects.get(pk=task.pk).save()  # the beat or a command saving outside a request: nothing
    assert SecurityEvent.objects.filter(kind=Kind.SCHEDULE_CHANGED).count() == 2


def test_a_plain_users_request_saving_nothing_records_no_schedule_change(client, user):
    client.force_login(user)
    client.get(reverse("accounts:security_activity"))
    assert not SecurityEvent.objects.filter(kind=Kind.SCHEDULE_CHANGED).exists()
