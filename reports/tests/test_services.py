"""One report per user and week: idempotent creation, atomic regeneration, the week to report,
e-mail, and the weekly task."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.core import mail
from django.db import connection

from reports import services
from reports.models import ReportStatus, WeeklyReport
from reports.services import (
    GENERATING,
    LEGACY_TRUNCATED,
    generate_report,
    generate_weekly_reports,
    report_week_for,
)
from reports.tasks import user_report, weekly_reports

from .conftest import AFTER_THE_WEEK, FRIDAY, MONDAY, WEEK, at

pytestmark = pytest.mark.django_db


def test_without_a_key_a_plain_report_is_stored_and_marked(traded_week, user, no_model):
    outcome = generate_report(user, WEEK, now=AFTER_THE_WEEK)
    report = outcome.report
    assert outcome.action == "created"
    assert report.status == ReportStatus.FALLBACK and report.is_fallback and report.model == ""
    assert "OPENAI_API_KEY" in report.status_reason
    assert report.text.startswith("> 이 리포트는 언어 모델 없이") and report.unverified_numbers == []
    assert (report.iso_week, report.week_start) == (WEEK, MONDAY)


def test_running_twice_writes_one_report_per_user_and_calls_the_model_once(
        traded_week, user, model_settings, fake_openai):
    first = generate_weekly_reports(WEEK, now=AFTER_THE_WEEK)
    second = generate_weekly_reports(WEEK, now=AFTER_THE_WEEK)
    assert [o.action for o in first] == ["created"] and [o.action for o in second] == ["exists"]
    assert WeeklyReport.objects.count() == 1 and len(fake_openai.completions) == 1


def test_the_weekly_task_is_idempotent(traded_week, user, other_user, no_model, monkeypatch, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    monkeypatch.setattr("reports.services.timezone.now", lambda: AFTER_THE_WEEK)
    monkeypatch.setattr("reports.tasks.timezone.now", lambda: AFTER_THE_WEEK)
    first = weekly_reports.apply().get()  # the dispatcher: one task per user (run inline in tests)
    second = weekly_reports.apply().get()
    assert first == second == {"week": "2025-11-24", "users": 1}
    assert user_report.apply((user.pk, "2025-11-24")).get() == "exists"  # a redelivered user task
    assert list(WeeklyReport.objects.values_list("user__username", "iso_week")) == [(user.username, WEEK)]


@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_write_one_report(traded_week, user, no_model):
    if connection.vendor == "sqlite":
        pytest.skip("SQLite serialises writers; the claim is covered by the unique constraint tests")
    results = []

    def run():
        results.append(generate_report(user, WEEK, now=AFTER_THE_WEEK).action)
        connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) in (["created", "in_progress"], ["created", "exists"])
    assert WeeklyReport.objects.count() == 1


def test_a_fresh_claim_is_left_alone_and_a_stale_one_taken_over(traded_week, user, no_model):
    claim = WeeklyReport.objects.create(user=user, iso_week=WEEK, week_start=MONDAY, status=ReportStatus.FAILED,
                                        status_reason=GENERATING, created_at=AFTER_THE_WEEK)
    outcome = generate_report(user, WEEK, now=AFTER_THE_WEEK + dt.timedelta(minutes=5))
    assert outcome.action == "in_progress"
    claim.refresh_from_db()
    assert claim.status == ReportStatus.FAILED  # untouched
    outcome = generate_report(user, WEEK, now=AFTER_THE_WEEK + dt.timedelta(minutes=30))
    assert outcome.action == "created" and outcome.report.pk == claim.pk
    assert outcome.report.status == ReportStatus.FALLBACK


def test_a_failure_of_the_facts_leaves_a_failed_report_that_the_next_run_retries(
        traded_week, user, no_model, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("bars missing")

    monkeypatch.setattr(services, "build_facts", broken)
    outcome = generate_report(user, WEEK, now=AFTER_THE_WEEK)
    assert outcome.action == "failed" and outcome.report.status == ReportStatus.FAILED
    assert "RuntimeError" in outcome.report.status_reason
    monkeypatch.undo()
    retried = generate_report(user, WEEK, now=AFTER_THE_WEEK + dt.timedelta(minutes=1))
    assert retried.action == "created" and retried.report.status == ReportStatus.FALLBACK
    assert WeeklyReport.objects.count() == 1


def test_regenerate_replaces_the_report_in_place(traded_week, user, model_settings, fake_openai):
    model_settings.OPENAI_API_KEY = ""
    old = generate_report(user, WEEK, now=AFTER_THE_WEEK).report
    assert old.status == ReportStatus.FALLBACK
    model_settings.OPENAI_API_KEY = "sk-test-key"
    outcome = generate_report(user, WEEK, regenerate=True, now=AFTER_THE_WEEK)
    new = WeeklyReport.objects.get()
    assert outcome.action == "replaced" and new.pk == old.pk
    assert new.status == ReportStatus.OK and new.text != old.text and new.total_tokens == 1690
    assert new.created_at > old.created_at and new.status_reason == ""


def test_regenerate_keeps_the_old_report_when_it_cannot_build_a_new_one(traded_week, user, no_model, monkeypatch):
    old = generate_report(user, WEEK, now=AFTER_THE_WEEK).report

    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(services, "build_facts", broken)
    outcome = generate_report(user, WEEK, regenerate=True, now=AFTER_THE_WEEK)
    assert outcome.action == "failed"
    kept = WeeklyReport.objects.get()
    assert (kept.status, kept.text, kept.facts, kept.created_at) == (old.status, old.text, old.facts, old.created_at)


def test_regenerate_keeps_a_model_report_when_the_model_fails(traded_week, user, model_settings, fake_openai):
    good = generate_report(user, WEEK, now=AFTER_THE_WEEK).report
    fake_openai.mode = "500"
    outcome = generate_report(user, WEEK, regenerate=True, now=AFTER_THE_WEEK)
    assert outcome.action == "kept" and "HTTP 500" in outcome.message
    kept = WeeklyReport.objects.get()
    assert kept.status == ReportStatus.OK and kept.text == good.text


@pytest.mark.parametrize(("now", "week"), [
    (at(FRIDAY, 15, 29), dt.date(2025, 11, 17)),  # the week is not over: the previous one
    (at(FRIDAY, 15, 30), MONDAY),  # Friday's close
    (at(FRIDAY, 18, 0), MONDAY),  # the scheduled time
    (at(dt.date(2025, 11, 29), 9, 0), MONDAY),  # Saturday
    (at(dt.date(2025, 12, 1), 7, 0), MONDAY),  # Monday's catch-up
    (at(dt.date(2025, 12, 25), 18, 0), dt.date(2025, 12, 15)),  # Christmas Thursday: Friday still trades
    (at(dt.date(2026, 10, 9), 18, 0), dt.date(2026, 10, 5)),  # Hangul Day Friday: Thursday was the last day
])
def test_the_week_to_report(now, week):
    assert report_week_for(now) == week


def test_report_is_emailed_to_its_owner(traded_week, user, no_model, settings):
    settings.REPORTS_EMAIL = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    report = generate_report(user, WEEK, now=AFTER_THE_WEEK).report
    [message] = mail.outbox
    assert message.to == [user.email] and WEEK in message.subject
    assert "기본 리포트" in message.body
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html" and "<script" not in html and "<h2>요약</h2>" in html
    report.refresh_from_db()
    assert report.emailed_at is not None
    generate_report(user, WEEK, now=AFTER_THE_WEEK)  # exists: not mailed again
    assert len(mail.outbox) == 1


def test_the_database_refuses_a_second_report_of_a_week(user):
    from django.db import IntegrityError, transaction

    WeeklyReport.objects.create(user=user, iso_week=WEEK, week_start=MONDAY)
    with pytest.raises(IntegrityError), transaction.atomic():
        WeeklyReport.objects.create(user=user, iso_week=WEEK, week_start=MONDAY)


def holder(code: str):
    """Another user with activity in the week: a position held through it on a paper account."""
    from accounts.models import BrokerMode
    from accounts.tests.factories import BrokerAccountFactory, UserFactory
    from market.brokers.paper import PaperBroker

    from .conftest import PREVIOUS_THURSDAY

    person = UserFactory()
    account = BrokerAccountFactory(owner=person, mode=BrokerMode.PAPER, app_key="", app_secret="", account_number="")
    PaperBroker(account, clock=lambda: at(PREVIOUS_THURSDAY, 9, 5)).place_order("buy", code, 1, order_type="01")
    return person


@pytest.mark.parametrize(("mode", "calls", "why"), [
    ("500", 3, "모델 서버가 응답하지 않아"),
    ("malformed", 3, "모델 서버가 응답하지 않아"),  # an undecodable body counts as the server being down
    ("401", 1, "모델 API가 요청을 거부해"),  # a wrong key fails for everyone too
])
def test_when_the_model_is_down_the_next_users_do_not_wait_for_it(
        traded_week, user, model_settings, fake_openai, mode, calls, why):
    others = [holder(traded_week["held_code"]) for _ in range(2)]
    fake_openai.mode = mode
    first, *rest = generate_weekly_reports(WEEK, now=AFTER_THE_WEEK)
    assert len(rest) == 2 and {o.report.user for o in rest} == set(others)
    assert len(fake_openai.completions) == calls  # the first user's calls only
    assert first.report.status == ReportStatus.FALLBACK and first.report.attempts == calls
    for outcome in rest:
        assert outcome.report.status == ReportStatus.FALLBACK and outcome.report.attempts == 0
        assert outcome.report.status_reason.startswith(why) and "이번 실행에서" in outcome.report.status_reason
    assert f"{calls}번" in rest[0].report.status_reason


def test_a_down_model_is_not_called_for_every_regeneration_either(traded_week, user, model_settings, fake_openai):
    other = holder(traded_week["held_code"])
    generate_weekly_reports(WEEK, now=AFTER_THE_WEEK)
    assert len(fake_openai.completions) == 2
    fake_openai.mode = "malformed"
    outcomes = generate_weekly_reports(WEEK, regenerate=True, now=AFTER_THE_WEEK)
    assert len(fake_openai.completions) == 2 + 3  # one user's retries, then no call for the other
    assert [o.action for o in outcomes] == ["kept", "kept"]
    kept = WeeklyReport.objects.get(user=other)
    assert kept.status == ReportStatus.OK and "모델 서버가 응답하지 않아" in kept.status_reason


def test_a_truncated_answer_does_not_stop_the_run(traded_week, user, model_settings, fake_openai):
    holder(traded_week["held_code"])
    fake_openai.mode = "length"
    outcomes = generate_weekly_reports(WEEK, now=AFTER_THE_WEEK)
    assert len(fake_openai.completions) == 4  # each user's answer, and each once more with more room
    assert all("잘렸습니다" in o.report.status_reason for o in outcomes)


def test_regenerate_never_replaces_a_complete_report_with_a_truncated_one(
        traded_week, user, model_settings, fake_openai):
    good = generate_report(user, WEEK, now=AFTER_THE_WEEK).report
    assert good.status == ReportStatus.OK
    fake_openai.mode = "length"
    later = AFTER_THE_WEEK + dt.timedelta(days=2, hours=1)
    outcome = generate_report(user, WEEK, regenerate=True, now=later)
    assert len(fake_openai.completions) == 1 + 2  # the regeneration asked once more with more room
    kept = WeeklyReport.objects.get()
    assert outcome.action == "kept" and outcome.report.pk == kept.pk
    assert (kept.status, kept.text, kept.model, kept.attempts, kept.created_at) == (
        ReportStatus.OK, good.text, good.model, good.attempts, good.created_at)
    assert "<stro" not in kept.text
    assert kept.status_reason.startswith("2025-11-30 19:00에 다시 작성하려 했지만")
    assert "그대로 두었습니다" in kept.status_reason and "잘렸습니다" in kept.status_reason
    # a later regeneration that works replaces it, and the note goes
    fake_openai.mode = "ok"
    assert generate_report(user, WEEK, regenerate=True, now=later).action == "replaced"
    assert WeeklyReport.objects.get().status_reason == ""


@pytest.mark.parametrize("mode", ["refusal", "content_filter", "empty", "401"])
def test_regenerate_keeps_a_complete_report_whatever_the_model_answers(
        traded_week, user, model_settings, fake_openai, mode):
    good = generate_report(user, WEEK, now=AFTER_THE_WEEK).report
    fake_openai.mode = mode
    assert generate_report(user, WEEK, regenerate=True, now=AFTER_THE_WEEK).action == "kept"
    kept = WeeklyReport.objects.get()
    assert kept.status == ReportStatus.OK and kept.text == good.text and "그대로 두었습니다" in kept.status_reason


def test_a_report_stored_truncated_before_is_not_complete(traded_week, user, model_settings, fake_openai):
    truncated = generate_report(user, WEEK, now=AFTER_THE_WEEK).report
    WeeklyReport.objects.filter(pk=truncated.pk).update(text="## 요약\n이번 주 <stro", status_reason=LEGACY_TRUNCATED)
    fake_openai.mode = "length"
    outcome = generate_report(user, WEEK, regenerate=True, now=AFTER_THE_WEEK)
    assert outcome.action == "replaced" and outcome.report.status == ReportStatus.FALLBACK


def test_the_refusal_is_kept_on_the_report(traded_week, user, model_settings, fake_openai):
    fake_openai.refusal_text = "이 요청은 도와드릴 수 없습니다. <b>정책</b>"
    fake_openai.mode = "refusal"
    report = generate_report(user, WEEK, now=AFTER_THE_WEEK).report
    report.refresh_from_db()
    assert "이 요청은 도와드릴 수 없습니다. <b>정책</b>" in report.status_reason  # stored as written (escaped on the page)
    assert report.total_tokens == 1690  # the refusal's tokens were paid for
