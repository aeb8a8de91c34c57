"""Model output is untrusted: rendered harmless, and its numbers checked against the facts."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from reports.facts import build_facts
from reports.rendering import check_numbers, markdown_to_html, render_report
from reports.services import fallback_text

from .conftest import AFTER_THE_WEEK, WEEK
from .fake_openai import SCRIPT_REPLY

FACTS = {
    "portfolio": {"equity_start": 100_000_000, "equity_end": 101_234_567, "pnl": 1_234_567, "return_pct": 1.23},
    "benchmark": {"name": "전략 유니버스 동일가중", "symbols": 20, "return_pct": -0.87},
    "trades": [{"code": "005930", "name": "삼성전자", "price": 71_200, "quantity": 10, "amount": 712_000}],
    "strategies": [{"name": "평균회귀 2", "parameters": [{"name": "stop_loss", "value": -0.05}]}],
    "analysis": {"extreme_z": [{"code": "990300", "name": "데모푸드 30", "z_score": -2.87}]},
}


def texts(unverified):
    return [item["text"] for item in unverified]


class TagCollector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attributes = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += attrs


def parsed(html):
    collector = TagCollector()
    collector.feed(html)
    return collector


def test_script_and_raw_html_are_rendered_harmless():
    html = str(render_report(SCRIPT_REPLY))
    result = parsed(html)
    assert not {"script", "img", "iframe"} & set(result.tags)
    assert set(result.tags) <= {"h2", "p", "a", "strong"}
    assert not [name for name, _ in result.attributes if name.startswith("on")]
    assert not [value for name, value in result.attributes if name == "href"]  # both javascript: links lost their href
    assert "&lt;script&gt;" in html  # shown as text, never run
    assert "<strong>굵게</strong>" in html  # Markdown still works


def test_sanitiser_removes_what_markdown_would_let_through():
    html = markdown_to_html('[a](javascript:alert(1)) ![i](http://127.0.0.1/x.png) [ok](https://example.com)')
    assert "javascript:" not in html and "<img" not in html
    assert '<a href="https://example.com" rel="noopener noreferrer nofollow">ok</a>' in html


@pytest.mark.parametrize("text", [
    "수익률 1.23%", "수익률은 약 1.2%", "평가액 101,234,567원", "평가액 약 1억 123만원", "약 1.01억원", "손익 +1,234,567원",
    "삼성전자(005930) 71,200원에 10주", "z-점수 -2.87", "비교 지수 -0.87%", "손절 기준 -5%", "20종목",
    "데모푸드 30의 z-점수", "평균회귀 2 전략", "2025-11-28 (2025-W48) 12월 3일", "## 1. 요약\n1. 첫째",
])
def test_numbers_from_the_facts_pass(text):
    assert check_numbers(text, FACTS) == []


@pytest.mark.parametrize(("text", "flagged"), [
    ("수익률 3.5%", ["3.5%"]),
    ("평가액 99,999원", ["99,999"]),
    ("손익 5천만원", ["5천만"]),
    ("SK하이닉스(000660)", ["000660"]),
    ("z-점수 -3.10과 수익률 1.23%", ["-3.10"]),
])
def test_a_wrong_number_is_flagged(text, flagged):
    assert texts(check_numbers(text, FACTS)) == flagged


def test_flagged_numbers_are_highlighted_in_text_only():
    text = "수익률 3.5%입니다. [3.5%](https://example.com/3.5%25)"
    html = str(render_report(text, check_numbers(text, FACTS)))
    assert html.count('<mark class="number-unverified"') == 2
    assert 'href="https://example.com/3.5%25"' in html  # the attribute is untouched


@pytest.mark.django_db
def test_the_plain_report_quotes_only_facts(traded_week, user):
    facts = build_facts(user, WEEK, now=AFTER_THE_WEEK)
    text = fallback_text(facts)
    assert "기본 리포트" in text and "## 요약" in text and "## 위험 요인" in text
    assert f"{facts['portfolio']['equity_end']:,}원" in text
    assert "주문가능금액을 초과했습니다" in text  # the rejected order is among the bad points
    assert check_numbers(text, facts) == []
