"""Writing the weekly reports: facts (code) → text (the model, or the plain template) → one stored
row per user and ISO week.

Idempotent and safe to run twice or concurrently:
- a missing report is claimed by inserting its row (unique per user and week) before any work; a
  second run finds the row and does nothing. The claim row is `failed` with the reason "작성 중"
  until the report is stored, so a crashed run leaves a visible failed report, which the next run
  takes over once the claim is older than `STALE_CLAIM`;
- regenerating computes the new report first and replaces the row's fields in one transaction
  (`select_for_update`): a reader sees the old report or the new one, never a mix. A complete
  model-written report is never replaced by a plain one when the model fails, truncates, refuses or
  has no key during a regeneration: it is kept, and its `status_reason` says when and why the
  regeneration did not replace it. Only an explicit `use_model=False` (`--no-model`) replaces it
  with the plain report;
- a weekly run stops calling the model once it failed for everyone (down after its retries, or a
  wrong key/model/URL): the remaining users get the plain report with that reason at once, so a
  down model costs one user's retries, not every user's.

Reports only read the trading data; they never block or change trading.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone

from market.analysis_service import parse_week
from market.krx import SEOUL, session_open_close, week_trading_days
from market.models import DailyBar

from .facts import build_facts, iso_week_label, market_facts, users_with_activity, week_window
from .llm import FailureKind, ModelFailed, ModelUnavailable, Spent, write_report
from .models import ReportStatus, WeeklyReport
from .rendering import check_numbers, render_report

logger = logging.getLogger(__name__)

STALE_CLAIM = dt.timedelta(minutes=15)
GENERATING = "작성 중입니다."
# Fixed reasons, stored in Korean; the page shows them in its language (reports.labels).
NO_MODEL_REASON = "모델 없이 작성하도록 요청되어 기본 리포트를 만들었습니다."
NO_API_KEY_REASON = "OPENAI_API_KEY가 설정되지 않아 기본 리포트를 만들었습니다."
LEGACY_TRUNCATED = "답변이 길이 제한에서 잘렸습니다."  # the reason of truncated answers stored as ok before


@dataclass
class ReportOutcome:
    report: WeeklyReport | None
    action: str  # created | replaced | kept | exists | in_progress | failed
    message: str = ""
    skip_rest: str = ""  # set when the model failed for everyone: the reason for the run's other users


# ----------------------------------------------------------------------------------------------- weeks
def report_week_for(now: dt.datetime | None = None) -> dt.date:
    """Monday of the week to report at `now`: the current week once its last trading day's session
    has closed (Friday 18:00 → this week), else the latest earlier week with trading days."""
    now = (now or timezone.now()).astimezone(SEOUL)
    monday = now.date() - dt.timedelta(days=now.weekday())
    days = week_trading_days(monday)
    if days and now >= session_open_close(days[-1])[1]:
        return monday
    monday -= dt.timedelta(days=7)
    while not week_trading_days(monday):
        monday -= dt.timedelta(days=7)
    return monday


def latest_data_week() -> dt.date | None:
    """Monday of the week of the latest stored daily bar (the demo market's last session)."""
    latest = DailyBar.objects.order_by("-date").values_list("date", flat=True).first()
    return latest - dt.timedelta(days=latest.weekday()) if latest else None


def resolve_week(value: str | dt.date | None, now: dt.datetime | None = None) -> dt.date:
    """A week argument: "YYYY-Www", a date, "latest" (the latest stored bar's week) or None (the
    week to report now). Raises market.analysis_service.MalformedWeekError."""
    if value is None or value == "":
        return report_week_for(now)
    if value == "latest":
        week = latest_data_week()
        return week if week is not None else report_week_for(now)
    return parse_week(value)


# ----------------------------------------------------------------------------------------------- text
def _rows_with(items: list[dict], key: str, positive: bool) -> list[dict]:
    return [item for item in items if item.get(key) is not None and (item[key] > 0 if positive else item[key] < 0)]


def fallback_text(facts: dict) -> str:
    """The plain report: the same facts through a Markdown template (no model, no invented numbers)."""
    sells = [trade for trade in facts["trades"] if trade.get("realized_pnl") is not None]
    after = facts["positions_after"]
    excess = facts.get("excess_return_pct")
    context = {
        **facts,
        "winners": _rows_with(sells, "realized_pnl", True),
        "losers": _rows_with(sells, "realized_pnl", False),
        "gainers": _rows_with(after, "unrealized_pnl", True),
        "losers_held": _rows_with(after, "unrealized_pnl", False),
        "beat_benchmark": excess is not None and excess > 0,
        "lagged_benchmark": excess is not None and excess < 0,
        "largest": max(after, key=lambda row: row["value"]) if after else None,
    }
    return render_to_string("reports/fallback.md", context).strip() + "\n"


@dataclass
class Composed:
    """The report fields, and when the model failed in a way that would repeat for every user (down,
    or a wrong key/model/URL), the reason to give the rest of the run's users without calling it."""

    fields: dict
    skip_rest: str = ""


def attempts_phrase(attempts: int) -> str:
    """"모델 호출을 1번 시도했지만 실패" / "모델 호출이 3번 모두 실패" (never "1번 모두")."""
    if attempts <= 1:
        return "모델 호출을 1번 시도했지만 실패"
    return f"모델 호출이 {attempts}번 모두 실패"


def model_failure_reason(error: ModelFailed) -> str:
    """The Korean status reason of a report whose model call gave no report."""
    if error.kind == FailureKind.DOWN:
        return f"{attempts_phrase(error.spent.failed_in_a_row or error.attempts)}해 기본 리포트로 대신했습니다: {error}"
    if error.kind == FailureKind.REJECTED:
        return f"모델 API가 요청을 거부해(재시도하지 않음) 기본 리포트로 대신했습니다: {error}"
    if error.kind == FailureKind.TRUNCATED:
        return f"{error} 잘린 답변은 리포트로 쓰지 않고 기본 리포트로 대신했습니다."
    return f"{error} 기본 리포트로 대신했습니다."


def run_breaker_reason(error: ModelFailed) -> str:
    """The reason given to the rest of a run's users once the model failed for everyone."""
    why = "모델 서버가 응답하지 않아" if error.kind == FailureKind.DOWN else "모델 API가 요청을 거부해"
    return (f"{why} 이번 실행에서는 모델을 다시 부르지 않고 기본 리포트를 만들었습니다 "
            f"(앞선 리포트에서 {attempts_phrase(error.spent.failed_in_a_row or error.attempts)}: {error}). "
            "모델이 돌아오면 다시 작성하세요.")


def compose(facts: dict, *, use_model: bool = True, skip_model: str = "") -> Composed:
    """The report fields for `facts`: the model's text when it answers with a complete report, else
    the plain report with the reason (`skip_model`: don't call the model, for this reason). Never
    raises for a model problem."""
    spent = Spent()
    skip_rest = ""
    if skip_model:
        reason = skip_model
    elif not use_model:
        reason = NO_MODEL_REASON
    elif not settings.OPENAI_API_KEY:
        reason = NO_API_KEY_REASON
    else:
        try:
            reply = write_report(facts)
        except ModelUnavailable:
            reason = NO_API_KEY_REASON
        except ModelFailed as error:
            spent = error.spent
            reason = model_failure_reason(error)
            if error.fails_for_everyone:
                skip_rest = run_breaker_reason(error)
            logger.warning("report model failed (%s) after %d call(s): %s", error.kind, error.attempts, error)
        except Exception as error:  # a bug or an unexpected answer never loses the report
            logger.exception("report model call failed")
            reason = f"모델 응답을 처리하지 못해 기본 리포트로 대신했습니다: {type(error).__name__}"
        else:
            return Composed({
                "text": reply.text, "status": ReportStatus.OK, "model": reply.model, "status_reason": "",
                "attempts": reply.attempts, "prompt_tokens": reply.prompt_tokens,
                "completion_tokens": reply.completion_tokens, "total_tokens": reply.total_tokens,
                "cost_usd": reply.cost_usd, "unverified_numbers": check_numbers(reply.text, facts),
            })
    text = fallback_text(facts)
    # The tokens of calls whose answer was unusable (truncated, refused, …) were still paid for.
    return Composed({
        "text": text, "status": ReportStatus.FALLBACK, "model": "", "status_reason": reason,
        "attempts": spent.attempts, "prompt_tokens": spent.prompt_tokens,
        "completion_tokens": spent.completion_tokens, "total_tokens": spent.total_tokens,
        "cost_usd": spent.cost_usd, "unverified_numbers": check_numbers(text, facts),
    }, skip_rest)


def is_complete(report: WeeklyReport) -> bool:
    """A model-written report that a regeneration must not replace with anything but another one.
    (Reports stored before truncated answers were refused carry LEGACY_TRUNCATED: not complete.)"""
    return report.status == ReportStatus.OK and not report.status_reason.startswith(LEGACY_TRUNCATED)


# ----------------------------------------------------------------------------------------------- storing
def _claim(user, monday: dt.date, label: str, now: dt.datetime, regenerate: bool) -> tuple[WeeklyReport | None, ReportOutcome | None]:
    """(row to fill, None) when this call should write the report, else (None, the outcome)."""
    existing = WeeklyReport.objects.filter(user=user, iso_week=label).first()
    if existing is None:
        try:
            with transaction.atomic():
                return WeeklyReport.objects.create(
                    user=user, iso_week=label, week_start=monday, status=ReportStatus.FAILED,
                    status_reason=GENERATING, created_at=now,
                ), None
        except IntegrityError:  # another run claimed it a moment ago
            existing = WeeklyReport.objects.get(user=user, iso_week=label)
            return None, ReportOutcome(existing, "in_progress", "another run is writing this report")
    if regenerate:
        return existing, None
    if existing.status != ReportStatus.FAILED:
        return None, ReportOutcome(existing, "exists", "the report exists (use regenerate to replace it)")
    if existing.status_reason == GENERATING and existing.created_at > now - STALE_CLAIM:
        return None, ReportOutcome(existing, "in_progress", "another run is writing this report")
    taken = WeeklyReport.objects.filter(
        pk=existing.pk, status=ReportStatus.FAILED, created_at=existing.created_at,
    ).update(status_reason=GENERATING, created_at=now)
    if not taken:
        return None, ReportOutcome(existing, "in_progress", "another run is writing this report")
    existing.refresh_from_db()
    return existing, None


def generate_report(
    user, week: str | dt.date, *, regenerate: bool = False, use_model: bool = True, market: dict | None = None,
    now: dt.datetime | None = None, email: bool | None = None, skip_model: str = "",
) -> ReportOutcome:
    """Write (or with `regenerate`, rewrite) `user`'s report of `week`; see the module docstring."""
    now = now or timezone.now()
    monday = parse_week(week)
    label = iso_week_label(monday)
    row, outcome = _claim(user, monday, label, now, regenerate)
    if outcome is not None:
        return outcome
    claimed = row.status_reason == GENERATING and row.status == ReportStatus.FAILED
    try:
        facts = build_facts(user, monday, market=market, now=now)
    except Exception as error:
        logger.exception("facts of user %s week %s failed", user.pk, label)
        message = f"사실 자료를 계산하지 못했습니다: {type(error).__name__}"
        if claimed:
            WeeklyReport.objects.filter(pk=row.pk).update(status_reason=message)
            row.refresh_from_db()
        return ReportOutcome(row, "failed", message)
    composed = compose(facts, use_model=use_model, skip_model=skip_model)
    fields = composed.fields

    with transaction.atomic():
        current = WeeklyReport.objects.select_for_update().filter(user=user, iso_week=label).first()
        if current is None:  # deleted meanwhile (e.g. in the admin): store it anew
            current = WeeklyReport(user=user, iso_week=label, week_start=monday)
        replacing = current.pk is not None and not claimed
        if replacing and use_model and is_complete(current) and fields["status"] != ReportStatus.OK:
            # Never trade a complete model report for a plain one: keep it, and say on it why the
            # regeneration did not replace it.
            tried = timezone.localtime(now).strftime("%Y-%m-%d %H:%M")
            current.status_reason = (f"{tried}에 다시 작성하려 했지만 새 리포트를 만들지 못해 모델이 쓴 기존 리포트를 "
                                     f"그대로 두었습니다. {fields['status_reason']}")
            current.save(update_fields=["status_reason"])
            return ReportOutcome(current, "kept", current.status_reason, composed.skip_rest)
        current.facts = facts
        current.week_start = monday
        for name, value in fields.items():
            setattr(current, name, value)
        current.created_at = timezone.now()
        current.emailed_at = None
        current.save()
    action = "replaced" if replacing else "created"
    if email if email is not None else settings.REPORTS_EMAIL:
        send_report_email(current)
    return ReportOutcome(current, action, current.status_reason, composed.skip_rest)


def generate_weekly_reports(
    week: str | dt.date | None = None, *, users=None, regenerate: bool = False, use_model: bool = True,
    now: dt.datetime | None = None, email: bool | None = None,
) -> list[ReportOutcome]:
    """One report per user with activity in the week (or per user of `users`). The market part of
    the facts is computed once for all of them. Safe to run twice: existing reports are kept."""
    now = now or timezone.now()
    monday = resolve_week(week, now)
    targets = list(users) if users is not None else list(users_with_activity(monday))
    if not targets:
        return []
    market = market_facts(week_window(monday, now))
    outcomes = []
    skip_model = ""
    for user in targets:
        try:
            outcome = generate_report(
                user, monday, regenerate=regenerate, use_model=use_model, market=market, now=now, email=email,
                skip_model=skip_model,
            )
        except Exception:  # one user's failure never stops the others
            logger.exception("weekly report of user %s failed", user.pk)
            outcomes.append(ReportOutcome(None, "failed", f"user {user.pk}: unexpected error"))
            continue
        outcomes.append(outcome)
        if outcome.skip_rest and not skip_model:
            # The model is down (or the key is wrong) even after the retries: the other users get
            # the plain report at once (regenerate later) instead of each paying the same retries.
            skip_model = outcome.skip_rest
            logger.warning("weekly reports: the model failed for everyone; the remaining %d user(s) get the plain report",
                           len(targets) - len(outcomes))
    return outcomes


# The model's outage, shared by the per-user tasks of a week (the sequential loop above keeps it in a
# variable): after one user's report found the model down even after its retries, the others get the
# plain report at once for a while instead of each paying the same retries.
MODEL_DOWN_SECONDS = 30 * 60


def generate_user_report(user_id: int, week: str | dt.date | None = None, *, now: dt.datetime | None = None,
                         email: bool | None = None) -> ReportOutcome:
    """One user's weekly report, as a worker task runs it (reports fan out per user). The market part of
    the facts is computed once per week and shared through the cache."""
    from django.contrib.auth import get_user_model
    from django.core.cache import cache

    now = now or timezone.now()
    monday = resolve_week(week, now)
    user = get_user_model().objects.get(pk=user_id)
    market = cache.get_or_set(f"reports:market-facts:{monday}", lambda: market_facts(week_window(monday, now)), 3600)
    down_key = f"reports:model-down:{monday}"
    outcome = generate_report(user, monday, market=market, now=now, email=email, skip_model=cache.get(down_key) or "")
    if outcome.skip_rest:
        cache.set(down_key, outcome.skip_rest, MODEL_DOWN_SECONDS)
    return outcome


# ----------------------------------------------------------------------------------------------- e-mail
def send_report_email(report: WeeklyReport) -> bool:
    """E-mail the report to its owner (text: the Markdown; HTML: the sanitised rendering). Returns
    whether a mail was sent; a mail failure is logged, never raised."""
    user = report.user
    if not user.email or report.status == ReportStatus.FAILED:
        return False
    context = {"report": report, "facts": report.facts, "html": render_report(report.text, report.unverified_numbers)}
    subject = render_to_string("reports/email_subject.txt", context).strip()
    body = render_to_string("reports/email_body.txt", context)
    message = EmailMultiAlternatives(subject, body, settings.DEFAULT_FROM_EMAIL, [user.email])
    message.attach_alternative(render_to_string("reports/email_body.html", context), "text/html")
    try:
        message.send()
    except Exception:
        logger.exception("report e-mail to user %s failed", user.pk)
        return False
    WeeklyReport.objects.filter(pk=report.pk).update(emailed_at=timezone.now())
    report.emailed_at = timezone.now()
    return True
