"""The real `openai` client against the fake OpenAI-compatible server on 127.0.0.1: what the prompt
carries, what is stored, retries with backoff, time-outs and the fallback."""

from __future__ import annotations

import json
import logging
import time
from decimal import Decimal

import pytest

from accounts.models import BrokerMode
from accounts.tests.factories import BrokerAccountFactory
from reports.llm import ModelFailed, ModelUnavailable, cost_for, write_report
from reports.models import ReportStatus, WeeklyReport
from reports.services import generate_report

from .conftest import AFTER_THE_WEEK, API_KEY, WEEK
from .fake_openai import DEFAULT_REPLY, REFUSAL_TEXT

pytestmark = pytest.mark.django_db


def generate(user):
    return generate_report(user, WEEK, now=AFTER_THE_WEEK)


def test_the_prompt_carries_the_facts_and_nothing_personal(traded_week, user, model_settings, fake_openai):
    secret_account = BrokerAccountFactory(owner=user, mode=BrokerMode.SIMULATED, name="비밀 계좌")
    generate(user)
    [request] = fake_openai.completions
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"  # the key travels in the header only
    body = request.body
    assert body["model"] == "gpt-4o-mini" and body["temperature"] == 0.2
    system, user_message = body["messages"]
    assert system["role"] == "system" and "새 숫자를 만들거나" in system["content"]
    for section in ("요약", "잘된 점", "아쉬운 점", "위험 요인"):
        assert section in system["content"]
    facts = WeeklyReport.objects.get().facts
    payload = json.loads(user_message["content"].split("```json\n", 1)[1].split("\n```", 1)[0])
    assert payload["portfolio"] == facts["portfolio"]
    assert payload["trades"] == facts["trades"] and len(payload["trades"]) == 4
    assert payload["analysis"]["extreme_z"] == facts["analysis"]["extreme_z"]
    assert payload["failures"]["rejected_orders"][0]["message"] == "주문가능금액을 초과했습니다"
    raw = request.raw.decode()
    for secret in (API_KEY, secret_account.app_key, secret_account.app_secret, secret_account.account_number,
                   "비밀 계좌", user.username, user.email):
        assert secret not in raw
    assert "user" not in body  # no end-user id either


def test_a_good_answer_is_stored_with_tokens_and_cost(traded_week, user, model_settings, fake_openai):
    outcome = generate(user)
    report = WeeklyReport.objects.get(user=user, iso_week=WEEK)
    assert outcome.action == "created" and outcome.report.pk == report.pk
    assert report.status == ReportStatus.OK and report.text == DEFAULT_REPLY.strip()
    assert report.model == "gpt-4o-mini-2024-07-18"
    assert (report.prompt_tokens, report.completion_tokens, report.total_tokens, report.attempts) == (1234, 456, 1690, 1)
    # gpt-4o-mini: $0.15 / $0.60 per million tokens
    assert report.cost_usd == Decimal("0.000459")
    assert report.facts["week"]["iso_week"] == WEEK and report.unverified_numbers == []


@pytest.mark.parametrize("mode", ["429", "500"])
def test_transient_errors_fall_back_after_retries(traded_week, user, model_settings, fake_openai, mode):
    fake_openai.mode = mode
    outcome = generate(user)
    assert len(fake_openai.completions) == 3  # the first call and OPENAI_MAX_RETRIES=2 retries
    report = outcome.report
    assert report.status == ReportStatus.FALLBACK and report.model == ""
    assert report.attempts == 3 and f"HTTP {mode}" in report.status_reason and "3번" in report.status_reason
    assert "기본 리포트" in report.text and report.total_tokens == 0 and report.cost_usd is None


def test_a_time_out_falls_back_after_retries(traded_week, user, model_settings, fake_openai):
    fake_openai.mode, fake_openai.delay = "slow", 5.0
    started = time.monotonic()
    report = generate(user).report
    assert time.monotonic() - started < 4.5  # 3 calls × 0.5 s time-out, plus tiny backoffs
    assert len(fake_openai.completions) == 3
    assert report.status == ReportStatus.FALLBACK and "time-out" in report.status_reason


def test_a_transient_error_then_an_answer_is_stored(traded_week, user, model_settings, fake_openai):
    fake_openai.set_modes("500", "429")
    report = generate(user).report
    assert report.status == ReportStatus.OK and report.attempts == 3 and len(fake_openai.completions) == 3


def test_backoff_doubles_between_retries(model_settings, fake_openai):
    fake_openai.mode = "500"
    model_settings.OPENAI_RETRY_BACKOFF = 1.0
    model_settings.OPENAI_MAX_RETRIES = 3
    waits = []
    with pytest.raises(ModelFailed) as failed:
        write_report({"week": {"iso_week": WEEK}}, sleep=waits.append)
    assert failed.value.attempts == 4 and len(fake_openai.completions) == 4
    assert len(waits) == 3
    for wait, base in zip(waits, (1.0, 2.0, 4.0), strict=True):
        assert base <= wait <= base * 1.5


def test_a_permanent_error_is_not_retried(traded_week, user, model_settings, fake_openai):
    fake_openai.mode = "401"
    report = generate(user).report
    assert len(fake_openai.completions) == 1
    assert report.status == ReportStatus.FALLBACK and "HTTP 401" in report.status_reason


def test_an_empty_answer_falls_back(traded_week, user, model_settings, fake_openai):
    fake_openai.mode = "empty"
    report = generate(user).report
    assert report.status == ReportStatus.FALLBACK and "빈 답변" in report.status_reason


def test_no_key_means_no_call_and_a_plain_report(traded_week, user, model_settings, fake_openai):
    model_settings.OPENAI_API_KEY = ""
    report = generate(user).report
    assert fake_openai.requests == []
    assert report.status == ReportStatus.FALLBACK and "OPENAI_API_KEY" in report.status_reason
    with pytest.raises(ModelUnavailable):
        write_report(report.facts)


def test_a_script_reply_is_stored_as_text_and_flagged_nowhere_unsafe(traded_week, user, model_settings, fake_openai):
    fake_openai.mode = "script"
    report = generate(user).report
    assert report.status == ReportStatus.OK and "<script>" in report.text  # stored as written ...
    from reports.rendering import render_report

    assert "<script" not in str(render_report(report.text))  # ... but never rendered as HTML


def test_a_wrong_number_from_the_model_is_flagged(traded_week, user, model_settings, fake_openai):
    fake_openai.reply = "## 요약\n이번 주 수익률은 12.34%였고 손익은 7,777,777원입니다."
    report = generate(user).report
    assert [item["text"] for item in report.unverified_numbers] == ["12.34%", "7,777,777"]


def test_the_request_body_is_logged_without_secrets(traded_week, user, model_settings, fake_openai, caplog):
    with caplog.at_level(logging.INFO, logger="reports.llm"):
        generate(user)
    logged = "\n".join(record.getMessage() for record in caplog.records if record.name == "reports.llm")
    assert '"model": "gpt-4o-mini"' in logged and "2025-W48" in logged  # the body is there
    assert API_KEY not in logged


def test_cost_from_the_price_table(settings):
    settings.OPENAI_PRICES = {"gpt-4o": (2.5, 10.0), "gpt-4o-mini": (0.15, 0.6)}
    assert cost_for("gpt-4o-mini-2024-07-18", 1_000_000, 1_000_000) == Decimal("0.750000")
    assert cost_for("gpt-4o", 2000, 1000) == Decimal("0.015000")
    assert cost_for("llama-3-local", 1000, 1000) is None


# --- answers that are not a report ------------------------------------------------------------------
def test_a_truncated_answer_is_asked_again_with_more_room(traded_week, user, model_settings, fake_openai):
    model_settings.OPENAI_MAX_OUTPUT_TOKENS = 1000
    model_settings.OPENAI_MAX_OUTPUT_TOKENS_CEILING = 1500
    fake_openai.set_modes("length", "ok")
    report = generate(user).report
    first, second = fake_openai.completions
    assert (first.body["max_completion_tokens"], second.body["max_completion_tokens"]) == (1000, 1500)
    assert report.status == ReportStatus.OK and report.text == DEFAULT_REPLY.strip()
    assert report.status_reason == "" and report.attempts == 2
    # both calls were paid for: 1234 + 1000 (cut) and 1234 + 456
    assert (report.prompt_tokens, report.completion_tokens, report.total_tokens) == (2468, 1456, 3924)


def test_an_answer_truncated_again_is_not_a_report(traded_week, user, model_settings, fake_openai):
    model_settings.OPENAI_MAX_OUTPUT_TOKENS = 1000
    model_settings.OPENAI_MAX_OUTPUT_TOKENS_CEILING = 8000
    fake_openai.mode = "length"
    report = generate(user).report
    assert [r.body["max_completion_tokens"] for r in fake_openai.completions] == [1000, 2000]
    assert report.status == ReportStatus.FALLBACK and report.model == ""
    assert report.text.startswith("> 이 리포트는 언어 모델 없이") and "<stro" not in report.text  # the plain report
    assert "출력 한도에서 잘렸습니다" in report.status_reason and "2,000 토큰" in report.status_reason
    assert report.attempts == 2 and report.completion_tokens == 3000  # what the cut answers cost


def test_no_room_to_grow_means_no_second_call(traded_week, user, model_settings, fake_openai):
    model_settings.OPENAI_MAX_OUTPUT_TOKENS = 2000
    model_settings.OPENAI_MAX_OUTPUT_TOKENS_CEILING = 2000
    fake_openai.mode = "length"
    report = generate(user).report
    assert len(fake_openai.completions) == 1
    assert report.status == ReportStatus.FALLBACK and "OPENAI_MAX_OUTPUT_TOKENS_CEILING" in report.status_reason


def test_a_filtered_answer_is_not_a_report(traded_week, user, model_settings, fake_openai):
    fake_openai.mode = "content_filter"
    report = generate(user).report
    assert len(fake_openai.completions) == 1
    assert report.status == ReportStatus.FALLBACK and "콘텐츠 필터" in report.status_reason


def test_a_refusal_keeps_the_models_words(traded_week, user, model_settings, fake_openai):
    fake_openai.mode = "refusal"
    report = generate(user).report
    assert len(fake_openai.completions) == 1  # a refusal is an answer: not retried
    assert report.status == ReportStatus.FALLBACK and report.text.startswith("> 이 리포트는 언어 모델 없이")
    assert "거절" in report.status_reason and REFUSAL_TEXT in report.status_reason
    assert "빈" not in report.status_reason


@pytest.mark.parametrize("mode", ["malformed", "undecodable", "html", "not_completion"])
def test_an_undecodable_answer_is_retried_and_counted(traded_week, user, model_settings, fake_openai, mode):
    fake_openai.mode = mode
    report = generate(user).report
    assert len(fake_openai.completions) == 3  # retried like a 5xx
    assert report.status == ReportStatus.FALLBACK and report.attempts == 3
    assert "3번 모두 실패" in report.status_reason and "응답 본문을 해석할 수 없음" in report.status_reason


def test_an_undecodable_answer_then_a_good_one_is_stored(traded_week, user, model_settings, fake_openai):
    fake_openai.set_modes("malformed", "undecodable")
    report = generate(user).report
    assert report.status == ReportStatus.OK and report.attempts == 3 and len(fake_openai.completions) == 3


def test_malformed_answers_wait_with_the_backoff(model_settings, fake_openai):
    fake_openai.mode = "malformed"
    model_settings.OPENAI_RETRY_BACKOFF = 1.0
    waits = []
    with pytest.raises(ModelFailed) as failed:
        write_report({"week": {"iso_week": WEEK}}, sleep=waits.append)
    assert failed.value.attempts == 3 and failed.value.fails_for_everyone
    assert 1.0 <= waits[0] <= 1.5 and 2.0 <= waits[1] <= 3.0


@pytest.mark.parametrize(("retries", "phrase"), [(0, "모델 호출을 1번 시도했지만 실패해"), (2, "모델 호출이 3번 모두 실패해")])
def test_the_reason_reads_right_for_any_number_of_calls(traded_week, user, model_settings, fake_openai, retries, phrase):
    model_settings.OPENAI_MAX_RETRIES = retries
    fake_openai.mode = "500"
    report = generate(user).report
    assert report.attempts == retries + 1 and phrase in report.status_reason
    assert "1번 모두" not in report.status_reason
