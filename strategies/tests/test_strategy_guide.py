"""manage.py strategy_guide (docs/strategies_kr.md) and the 전략 가이드 page."""

import io
import re

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from strategies import guide_views
from strategies.library import all_strategies
from strategies.management.commands import strategy_guide


@pytest.fixture(scope="module")
def guide_text() -> str:
    """One generation for the module (the demo market and seven backtests take a few seconds)."""
    return strategy_guide.generate()


def _section(text: str, cls) -> str:
    start = text.index(f"\n## {cls.name} ({cls.key})\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else len(text)]


def test_the_guide_names_every_strategy_with_its_parameter_bounds(guide_text):
    strategies = all_strategies()
    assert len(strategies) >= 7
    for cls in strategies.values():
        section = _section(guide_text, cls)
        assert cls.description in section
        for p in cls.parameter_specs():
            row = next(line for line in section.splitlines() if line.startswith(f"| `{p.name}` |"))
            cells = [c.strip() for c in row.strip("|").split("|")]
            assert cells[1] == p.label
            assert cells[3:6] == [strategy_guide._bound(v) for v in (p.default, p.min, p.max)]
    # The generated bounds are the declared ones, e.g. mean reversion's window 2..250 and z 0.1..10.
    mean_reversion = _section(guide_text, strategies["mean_reversion"])
    assert "| `window` | 기간 | 정수 | 20 | 2 | 250 |" in mean_reversion
    assert "| `z_threshold` | Z 임계값 | 숫자 | 2 | 0.1 | 10 |" in mean_reversion


def test_every_built_in_strategy_has_its_prose_and_a_backtest_next_to_the_benchmark(guide_text):
    assert set(strategy_guide.GUIDE_TEXT) <= set(all_strategies())
    for key, cls in all_strategies().items():
        section = _section(guide_text, cls)
        assert strategy_guide.GUIDE_TEXT[key]["works"] in section  # a new built-in needs its Korean prose
        assert strategy_guide.GUIDE_TEXT[key]["fails"] in section
        assert "| 지표 | 전략 | 균등가중 매수 후 보유 |" in section
        for metric in ("총수익률", "연평균 수익률(CAGR)", "샤프 지수", "최대 낙폭(MDD)", "승률", "거래 수"):
            assert re.search(rf"^\| {re.escape(metric)} \| [-+]?[\d,.]+%? \|", section, re.M), (key, metric)
    # The conditions are stated: period, universe, costs.
    assert "2023-01-02 ~ 2025-12-30" in guide_text
    assert "40개 종목" in guide_text
    assert "수수료 각각 0.0140527%" in guide_text


def test_the_figures_are_deterministic_and_check_follows_the_file(guide_text, tmp_path, monkeypatch):
    out = tmp_path / "strategies_kr.md"
    call_command("strategy_guide", output=str(out), stdout=io.StringIO())  # a second generation
    assert out.read_text(encoding="utf-8") == guide_text

    monkeypatch.setattr(strategy_guide, "generate", lambda: guide_text)  # no third run: same text as above
    call_command("strategy_guide", output=str(out), check=True, stdout=io.StringIO())

    out.write_text(guide_text.replace("| 거래 수 |", "| 거래 횟수 |", 1), encoding="utf-8")
    with pytest.raises(CommandError, match="out of date") as error:
        call_command("strategy_guide", output=str(out), check=True)
    assert error.value.returncode == 1

    out.unlink()
    with pytest.raises(CommandError, match="out of date"):
        call_command("strategy_guide", output=str(out), check=True)


def test_the_committed_guide_is_up_to_date(guide_text):
    # CI keeps docs/strategies_kr.md fresh: regenerate with `manage.py strategy_guide` after changing a
    # strategy, its parameters, its prose or the backtest.
    assert guide_views.guide_path().read_text(encoding="utf-8") == guide_text


# --------------------------------------------------------------------------------------------- the page


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_the_guide_page_renders_the_markdown_for_a_logged_in_user(logged_in):
    response = logged_in.get(reverse("strategies:guide"))
    assert response.status_code == 200
    html = response.content.decode()
    for cls in all_strategies().values():
        assert f"{cls.name} ({cls.key})</h2>" in html
    assert '<h2 id="평균회귀-z-점수-mean_reversion">' in html  # the table of contents' anchors exist
    assert 'href="#평균회귀-z-점수-mean_reversion"' in html
    assert '<table class="table compact">' in html


@pytest.mark.django_db
def test_the_guide_is_linked_from_the_strategies_page_and_needs_login(logged_in):
    page = logged_in.get(reverse("strategies:index")).content.decode()
    assert f'href="{reverse("strategies:guide")}" id="strategy-guide-link">전략 가이드</a>' in page
    logged_in.logout()
    response = logged_in.get(reverse("strategies:guide"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.mark.django_db
def test_the_page_sanitises_the_file_and_is_404_without_it(logged_in, tmp_path, monkeypatch):
    guide = tmp_path / "strategies_kr.md"
    monkeypatch.setattr(guide_views, "guide_path", lambda: guide)
    assert logged_in.get(reverse("strategies:guide")).status_code == 404

    guide.write_text('# 가이드\n\n<script>alert(1)</script>\n\n[x](javascript:alert(2))\n', encoding="utf-8")
    html = logged_in.get(reverse("strategies:guide")).content.decode()
    assert "<script>alert(1)" not in html
    assert "javascript:alert" not in html
    assert '<h1 id="가이드">가이드</h1>' in html
