"""리포트 pages: owner only, the text sanitised with flagged numbers, facts tables, charts, status
and the regenerate button."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from reports.models import ReportStatus, WeeklyReport
from reports.services import generate_report

from .conftest import AFTER_THE_WEEK, WEEK

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def report(traded_week, user, no_model):
    return generate_report(user, WEEK, now=AFTER_THE_WEEK).report


def test_pages_need_a_login(client):
    for url in (reverse("reports:index"), reverse("reports:detail", args=[WEEK])):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_empty_list(logged_in):
    response = logged_in.get(reverse("reports:index"))
    assert response.status_code == 200
    assert 'id="no-reports"' in response.content.decode()


def test_list_shows_the_weeks(logged_in, report):
    page = logged_in.get(reverse("reports:index")).content.decode()
    assert f'data-week="{WEEK}"' in page and reverse("reports:detail", args=[WEEK]) in page
    assert f"{report.facts['portfolio']['return_pct']:+.2f}%" in page
    assert "status-fallback" in page


def test_detail_shows_text_facts_charts_and_status(logged_in, report):
    response = logged_in.get(reverse("reports:detail", args=[WEEK]))
    page = response.content.decode()
    assert response.status_code == 200
    assert 'id="report-text"' in page and "<h2>요약</h2>" in page
    assert "status-fallback" in page and "OPENAI_API_KEY" in page  # marked as the plain report, with why
    assert 'id="report-trades"' in page and 'id="positions-before"' in page and 'id="positions-after"' in page
    assert 'id="extreme-z"' in page and 'id="report-failures"' in page and "주문가능금액을 초과했습니다" in page
    chart = response.context["chart"]
    assert chart["dates"][0] == "2025-11-21" and chart["equity"][-1] == report.facts["portfolio"]["equity_end"]
    assert 'id="report-chart-data"' in page and "reports/report.js" in page
    assert 'id="regenerate-form"' in page


def test_another_users_report_is_a_404(client, other_user, report):
    client.force_login(other_user)
    assert client.get(reverse("reports:detail", args=[WEEK])).status_code == 404
    assert client.post(reverse("reports:regenerate", args=[WEEK])).status_code == 404
    assert WEEK not in client.get(reverse("reports:index")).content.decode()


def test_malformed_or_missing_week_is_a_404(logged_in, report):
    assert logged_in.get("/reports/2025-48/").status_code == 404
    assert logged_in.get(reverse("reports:detail", args=["2025-W47"])).status_code == 404


def test_model_output_is_harmless_and_wrong_numbers_are_flagged(logged_in, report):
    WeeklyReport.objects.filter(pk=report.pk).update(
        status=ReportStatus.OK, model="gpt-test",
        text='## 요약\n<script>alert("x")</script> 수익률 12.34% <img src=x onerror=alert(1)>',
        unverified_numbers=[{"text": "12.34%", "value": 12.34}],
    )
    page = logged_in.get(reverse("reports:detail", args=[WEEK])).content.decode()
    text = page.split('id="report-text"', 1)[1].split("</article>", 1)[0]
    assert "<script" not in text and "<img" not in text and "&lt;script&gt;" in text
    assert '<mark class="number-unverified"' in text and 'id="unverified-numbers"' in page
    assert "status-ok" in page and "gpt-test" in page


def test_regenerate_rewrites_with_the_model(logged_in, report, model_settings, fake_openai, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    response = logged_in.post(reverse("reports:regenerate", args=[WEEK]))
    assert response.status_code == 302 and response["Location"] == reverse("reports:detail", args=[WEEK])
    report.refresh_from_db()
    assert report.status == ReportStatus.OK and len(fake_openai.completions) == 1
    page = logged_in.get(reverse("reports:detail", args=[WEEK])).content.decode()
    assert "gpt-4o-mini-2024-07-18" in page


def test_regenerate_needs_a_post(logged_in, report):
    assert logged_in.get(reverse("reports:regenerate", args=[WEEK])).status_code == 405


def test_facts_json_is_escaped_on_the_page(logged_in, report):
    facts = dict(report.facts)
    facts["strategies"] = [{**facts["strategies"][0], "name": "<b>전략</b>"}]
    WeeklyReport.objects.filter(pk=report.pk).update(facts=facts)
    page = logged_in.get(reverse("reports:detail", args=[WEEK])).content.decode()
    assert "<b>전략</b>" not in page and "&lt;b&gt;전략&lt;/b&gt;" in page
    assert json.loads(json.dumps(facts))  # still JSON


def test_a_kept_model_report_shows_why_the_regeneration_did_not_replace_it(
        traded_week, user, logged_in, model_settings, fake_openai, settings):
    good = generate_report(user, WEEK, now=AFTER_THE_WEEK).report
    fake_openai.mode = "length"
    settings.CELERY_TASK_ALWAYS_EAGER = True
    logged_in.post(reverse("reports:regenerate", args=[WEEK]))
    page = logged_in.get(reverse("reports:detail", args=[WEEK])).content.decode()
    assert "status-ok" in page and good.model in page  # still the model's report …
    reason = page.split('id="status-reason"', 1)[1].split("</p>", 1)[0]
    assert "그대로 두었습니다" in reason and "출력 한도에서 잘렸습니다" in reason  # … and why it was kept
    text = page.split('id="report-text"', 1)[1].split("</article>", 1)[0]
    assert "<stro" not in text and "&lt;stro" not in text  # the cut answer is shown nowhere


def test_a_refusal_is_shown_with_the_models_words(traded_week, user, logged_in, model_settings, fake_openai):
    fake_openai.refusal_text = "죄송합니다. <script>x</script> 작성할 수 없습니다."
    fake_openai.mode = "refusal"
    generate_report(user, WEEK, now=AFTER_THE_WEEK)
    page = logged_in.get(reverse("reports:detail", args=[WEEK])).content.decode()
    reason = page.split('id="status-reason"', 1)[1].split("</p>", 1)[0]
    assert "거절했습니다" in reason and "죄송합니다. &lt;script&gt;x&lt;/script&gt; 작성할 수 없습니다." in reason
    assert "status-fallback" in page and "<script>x" not in page


def test_a_complete_report_without_a_reason_shows_none(traded_week, user, logged_in, model_settings, fake_openai):
    generate_report(user, WEEK, now=AFTER_THE_WEEK)
    page = logged_in.get(reverse("reports:detail", args=[WEEK])).content.decode()
    assert "status-ok" in page and 'id="status-reason"' not in page
