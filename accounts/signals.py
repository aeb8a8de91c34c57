"""Receivers that feed the audit trail (accounts.audit) from Django's, allauth's and django-celery-beat's
signals; connected in AccountsConfig.ready().

- logins: Django's `user_logged_in` (the site's login with or without a second factor, Kakao, a passkey,
  the sign-up's automatic login) and `user_login_failed` (a wrong password on the site, the admin's login
  — the site's — and the API's token endpoints). A token login that succeeds is recorded by
  `accounts.services.authenticate_login`, which is where the API checks passwords.
- the second factor: allauth.mfa's `authenticator_added`, `authenticator_removed`, `authenticator_reset`
  (recovery codes generated again), `authenticator_used` (only a recovery code is an event of its own; a
  step-up is recorded by the step-up code) and `authentication_failed` (a wrong code). allauth sends
  some of them once its own transaction has committed: those rows follow the commit instead of sharing
  it, and an action rolled back never sends them.
- schedules: a periodic task or a schedule of django-celery-beat saved or deleted during a request by a
  signed-in user (the admin), and the admin's enable/disable/toggle actions (a bulk update that sends no
  per-row signal, seen through the beat's change marker). Commands, migrations and the beat itself
  record nothing.
"""

from __future__ import annotations

from allauth.mfa import signals as mfa_signals
from allauth.mfa.models import Authenticator
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db.models.signals import post_delete, post_save

from . import audit
from .models import SecurityEventKind as Kind

SCHEDULE_ADMIN_ACTIONS = ("enable_tasks", "disable_tasks", "toggle_tasks")


def _login_methods(request, user) -> list[str]:
    """How this login was proven, from allauth's records in the session: ["password", "mfa:totp"]."""
    session = getattr(request, "session", None)
    if session is None:
        return []
    try:
        from allauth.account.authentication import get_authentication_records

        records = get_authentication_records(request, user) if request is not None else []
    except Exception:
        return []
    methods = []
    for record in records:
        method = str(record.get("method", ""))
        kind = record.get("type") or record.get("provider")
        label = f"{method}:{kind}" if kind else method
        if label and label not in methods:
            methods.append(label)
    return methods


def on_user_logged_in(sender, request, user, **kwargs):
    methods = _login_methods(request, user)
    audit.record_login(user, request=request, detail={"methods": methods} if methods else None)


def on_user_login_failed(sender, credentials, request=None, **kwargs):
    from .adapters import account_key

    login = str(credentials.get("username") or credentials.get("email") or credentials.get("login") or "")
    user = None
    if login:
        key = account_key(login)
        if key.startswith("user:"):
            from django.contrib.auth import get_user_model

            user = get_user_model().objects.filter(pk=int(key.split(":", 1)[1])).first()
    audit.record_failed_login(user=user, login=login, request=request, detail={"reason": "password"})


def _authenticator_detail(authenticator) -> dict:
    return {"type": authenticator.type, "authenticator": authenticator.pk}


def on_authenticator_added(sender, request, user, authenticator, **kwargs):
    kind = (Kind.RECOVERY_CODES_GENERATED if authenticator.type == Authenticator.Type.RECOVERY_CODES
            else Kind.MFA_ADDED)
    audit.record_event(kind, user=user, request=request, detail=_authenticator_detail(authenticator))


def on_authenticator_removed(sender, request, user, authenticator, **kwargs):
    audit.record_event(Kind.MFA_REMOVED, user=user, request=request, detail=_authenticator_detail(authenticator))


def on_authenticator_reset(sender, request, user, authenticator, **kwargs):
    audit.record_event(Kind.RECOVERY_CODES_GENERATED, user=user, request=request,
                       detail=_authenticator_detail(authenticator))


def on_authenticator_used(sender, request, user, authenticator, reauthenticated=False, passwordless=False, **kwargs):
    if reauthenticated:  # a step-up: the page's re-authentication or POST /api/auth/step-up/ (accounts.step_up)
        audit.record_event(Kind.STEP_UP, user=user, request=request, detail=_authenticator_detail(authenticator))
    if authenticator.type != Authenticator.Type.RECOVERY_CODES:
        return
    audit.record_event(Kind.RECOVERY_CODE_USED, user=user, request=request,
                       detail={**_authenticator_detail(authenticator), "reauthentication": bool(reauthenticated)})


def on_authentication_failed(sender, request, user, authenticator, reauthentication=False, **kwargs):
    audit.record_failed_login(user=user, request=request, detail={
        "reason": "second_factor", "type": authenticator.type, "reauthentication": bool(reauthentication)})


# --- schedules (django-celery-beat) --------------------------------------------------------------------
def _admin_user():
    """The signed-in user of the request being served, or None (a command, a migration, the beat)."""
    request = audit.current_request()
    user = getattr(request, "user", None) if request is not None else None
    return user if getattr(user, "is_authenticated", False) else None


def _schedule_detail(instance, action: str) -> dict:
    detail = {"model": instance._meta.model_name, "id": instance.pk, "action": action, "object": str(instance)[:200]}
    for name in ("name", "task", "enabled"):
        if hasattr(instance, name):
            detail[name] = getattr(instance, name)
    if instance._meta.model_name == "periodictask":
        schedule = next((getattr(instance, field) for field in ("crontab", "interval", "solar", "clocked")
                         if getattr(instance, f"{field}_id", None)), None)
        if schedule is not None:
            detail["schedule"] = str(schedule)[:200]
    return detail


def on_schedule_saved(sender, instance, created, raw=False, **kwargs):
    user = None if raw else _admin_user()
    if user is None:
        return
    audit.record_event(Kind.SCHEDULE_CHANGED, user=user, detail=_schedule_detail(instance, "created" if created else "changed"))


def on_schedule_deleted(sender, instance, **kwargs):
    user = _admin_user()
    if user is None:
        return
    audit.record_event(Kind.SCHEDULE_CHANGED, user=user, detail=_schedule_detail(instance, "deleted"))


def on_schedules_marked_changed(sender, instance, raw=False, **kwargs):
    """The beat's change marker (PeriodicTasks) is saved by every change of a periodic task; only the
    admin's bulk actions, which send no signal per task, are recorded from here."""
    user = None if raw else _admin_user()
    request = audit.current_request()
    if user is None or request is None or request.method != "POST":
        return
    action = request.POST.get("action", "")
    if action not in SCHEDULE_ADMIN_ACTIONS:
        return
    from django_celery_beat.models import PeriodicTask

    ids = [int(pk) for pk in request.POST.getlist("_selected_action") if str(pk).isdigit()]
    names = list(PeriodicTask.objects.filter(pk__in=ids).order_by("name").values_list("name", flat=True)[:50])
    audit.record_event(Kind.SCHEDULE_CHANGED, user=user,
                       detail={"model": "periodictask", "action": action, "ids": ids[:50], "tasks": names})


def connect() -> None:
    user_logged_in.connect(on_user_logged_in, dispatch_uid="accounts.audit.user_logged_in")
    user_login_failed.connect(on_user_login_failed, dispatch_uid="accounts.audit.user_login_failed")
    mfa_signals.authenticator_added.connect(on_authenticator_added, dispatch_uid="accounts.audit.mfa_added")
    mfa_signals.authenticator_removed.connect(on_authenticator_removed, dispatch_uid="accounts.audit.mfa_removed")
    mfa_signals.authenticator_reset.connect(on_authenticator_reset, dispatch_uid="accounts.audit.mfa_reset")
    mfa_signals.authenticator_used.connect(on_authenticator_used, dispatch_uid="accounts.audit.mfa_used")
    mfa_signals.authentication_failed.connect(on_authentication_failed, dispatch_uid="accounts.audit.mfa_failed")

    from django_celery_beat.models import (
        ClockedSchedule,
        CrontabSchedule,
        IntervalSchedule,
        PeriodicTask,
        PeriodicTasks,
        SolarSchedule,
    )

    for model in (PeriodicTask, CrontabSchedule, IntervalSchedule, SolarSchedule, ClockedSchedule):
        uid = f"accounts.audit.schedule.{model._meta.model_name}"
        post_save.connect(on_schedule_saved, sender=model, dispatch_uid=f"{uid}.saved")
        post_delete.connect(on_schedule_deleted, sender=model, dispatch_uid=f"{uid}.deleted")
    post_save.connect(on_schedules_marked_changed, sender=PeriodicTasks, dispatch_uid="accounts.audit.schedule.marker")
