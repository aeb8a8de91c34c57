"""Every page the README lists is usable on a phone (390 × 844) as on a laptop (1,366 × 768), in Korean and
in English: no horizontal page scroll (a wide table scrolls inside its own box), no clipped text, no Korean
word broken between syllables, form controls and the kill switch big enough for a thumb on the phone.

One browser page for the whole module: the demo's data is built once (setup_demo's paper trading, its plain
weekly report, two backtests, a sweep, a walk-forward run) and every page is opened in the four
combinations. A full-page screenshot of each goes to pytest's tmp_path, or to $SCREENSHOT_DIR/layout when
that is set (kept as CI artifacts). The failures are collected and reported together, naming the page and
the element."""

from __future__ import annotations

import datetime as dt
import io
import os
import re
from pathlib import Path

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from accounts.models import User
from market.krx import SEOUL
from market.models import DailyBar
from reports.models import WeeklyReport
from strategies.models import StrategyConfig
from strategies.services import create_backtest_run, execute_backtest_run
from strategies.sweeps import create_sweep, execute_sweep
from strategies.walk_forward import create_walk_forward, execute_walk_forward

# setup_demo's market ends "today": a Wednesday morning in the session, the clock ticking (the live page's
# stream and the quote box's refresh wait on it).
WEDNESDAY = dt.datetime(2026, 11, 25, 10, 30, tzinfo=SEOUL)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.time_machine(WEDNESDAY)]

VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1366, "height": 768}}
LANGUAGES = ("ko", "en")
MIN_TAP = 44  # px: the height of a control a thumb has to hit (Apple's and WCAG 2.5.5's 44 px)

# Runs in the page; returns the problems found, each a sentence naming the element.
# (a) The page scrolls sideways, or an element sticks out of the viewport without a scrolling box (overflow-x
#     auto/scroll) around it: the outermost such elements are named, widest first.
# (b) Clipped text: an element with overflow hidden/clip whose content is wider than its box, or a cell,
#     button, label or heading whose text runs out of its own box.
# (c) A Hangul word drawn on two lines (삼/성/전/자): the rectangles of the word's Range lie on different lines.
# (d) On the phone (touch=true): a visible form control or button shorter than MIN_TAP.
CHECK_LAYOUT = r"""
({touch, minTap}) => {
  const viewport = document.documentElement.clientWidth;
  const problems = [];
  const name = (el) => {
    let text = el.tagName.toLowerCase();
    if (el.id) text += "#" + el.id;
    if (typeof el.className === "string" && el.className.trim()) text += "." + el.className.trim().split(/\s+/).join(".");
    const label = (el.innerText || el.value || "").replace(/\s+/g, " ").trim().slice(0, 40);
    return label ? `${text} "${label}"` : text;
  };
  const style = (el) => getComputedStyle(el);
  const scrollsX = (el) => ["auto", "scroll"].includes(style(el).overflowX);
  const insideScroller = (el) => {
    for (let parent = el.parentElement; parent && parent !== document.body; parent = parent.parentElement) {
      if (scrollsX(parent)) return true;
    }
    return false;
  };
  const shown = (el) => el.checkVisibility ? el.checkVisibility({visibilityProperty: true}) : el.offsetParent !== null;
  const elements = [...document.body.querySelectorAll("*")].filter(
    (el) => !["SCRIPT", "STYLE", "TEMPLATE", "OPTION", "NOSCRIPT"].includes(el.tagName) && shown(el));

  // (a)
  const sticking = elements.filter((el) => {
    if (el.closest(".visually-hidden") || insideScroller(el)) return false;
    const box = el.getBoundingClientRect();
    return box.width > 0 && box.right > viewport + 1;
  });
  const right = (el) => el.getBoundingClientRect().right;
  const outermost = sticking.filter((el) => !sticking.includes(el.parentElement)).sort((a, b) => right(b) - right(a));
  const pageWidth = document.documentElement.scrollWidth;
  if (pageWidth > viewport || outermost.length) {
    // none outside a scrolling box: one inside it escapes its clip (an absolutely positioned child whose
    // containing block is outside the box, such as a visually hidden label)
    const culprits = outermost.length ? outermost : [...document.body.querySelectorAll("*")]
      .filter((el) => right(el) > viewport + 1).sort((a, b) => right(b) - right(a));
    const named = culprits.slice(0, 3).map((el) => `${name(el)} (right edge ${Math.round(right(el))} px)`);
    problems.push(`the page is ${pageWidth} px wide on a ${viewport} px screen: ${named.join("; ")}`);
  }

  // (b); a 1-pixel box with overflow hidden is the screen-reader-only pattern, hidden on purpose
  for (const el of elements) {
    if (el.closest(".visually-hidden")) continue;
    const s = style(el);
    const clips = ["hidden", "clip"].includes(s.overflowX);
    const textBox = /^(TH|TD|BUTTON|LABEL|H1|H2|H3|SUMMARY|LEGEND|DT|DD)$/.test(el.tagName) || (el.tagName === "A" && s.display !== "inline");
    if (!(clips || (textBox && s.display !== "inline")) || el.clientWidth <= 1 || el.clientHeight <= 1) continue;
    if (el.scrollWidth > el.clientWidth + 1) {
      problems.push(`${clips ? "clipped" : "text runs out of its box"}: ${name(el)} (${el.scrollWidth} px of content in ${el.clientWidth} px)`);
    }
  }

  // (c)
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const range = document.createRange();
  const broken = new Set();
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (!parent || !/[가-힣]{2}/.test(node.data) || !shown(parent) || parent.closest("option, select, textarea, .visually-hidden")) continue;
    for (const match of node.data.matchAll(/[가-힣]{2,}/g)) {
      range.setStart(node, match.index);
      range.setEnd(node, match.index + match[0].length);
      const tops = new Set([...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.bottom / 4)));
      if (tops.size > 1) broken.add(`${match[0]} in ${name(parent)}`);
    }
  }
  for (const word of [...broken].slice(0, 5)) problems.push(`Korean word broken across lines: ${word}`);

  // (d)
  if (touch) {
    const controls = document.querySelectorAll(
      "main button, main select, main textarea, main input:not([type=checkbox]):not([type=radio]):not([type=hidden]), " +
      ".topbar select, .topbar button, main .button");
    for (const el of controls) {
      if (!shown(el) || el.closest(".visually-hidden, th, .table")) continue;
      const height = el.getBoundingClientRect().height;
      if (height + 0.5 < minTap) problems.push(`too small to tap: ${name(el)} (${Math.round(height)} px high)`);
    }
  }
  return problems;
}
"""


def screenshot_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ["SCREENSHOT_DIR"]) / "layout" if os.environ.get("SCREENSHOT_DIR") else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def demo_pages(settings):
    """setup_demo (the paper account's last weeks replayed: orders, fills, weekly runs), the plain weekly
    report, two finished backtests, a finished sweep and a finished walk-forward run; the pages to open
    (name, path, logged in)."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.OPENAI_API_KEY = ""
    call_command("setup_demo", symbols=3, years=1, stdout=io.StringIO())
    call_command("weekly_report", week="latest", user="demo", no_model=True, stdout=io.StringIO())
    demo = User.objects.get(username="demo")
    end = DailyBar.objects.order_by("-date").values_list("date", flat=True).first()
    codes = ["005930", "000660"]
    period = {"codes": codes, "start": end - dt.timedelta(days=300), "end": end}
    runs = []
    for window in (20, 10):
        run = create_backtest_run(demo, strategy_key="mean_reversion", params={"window": window}, **period)
        runs.append(execute_backtest_run(run))
    sweep = execute_sweep(create_sweep(demo, strategy_key="mean_reversion",
                                       grid={"window": [10, 20], "z_threshold": [1.5, 2.0]}, **period))
    walk = execute_walk_forward(create_walk_forward(
        demo, strategy_key="mean_reversion", grid={"window": [10, 20]}, in_sample_weeks=20, out_of_sample_weeks=8,
        **period))
    config = StrategyConfig.objects.filter(owner=demo).first()
    # long values: a long name, a listed-codes universe, the largest cash per week (the table used to grow
    # to 1,692 px and clip its 삭제 button)
    StrategyConfig.objects.create(
        owner=demo, name="반도체·인터넷 대형주 평균회귀 장기 보유 전략 (2026년 하반기 검증용)", strategy_key=config.strategy_key,
        params=config.params, universe_mode="codes", universe_codes="005930,000660,035420",
        max_positions=200, cash_per_week=1_000_000_000_000, broker_account=config.broker_account, is_active=False)
    account = demo.broker_accounts.first()
    report = WeeklyReport.objects.get()
    logged_out = [("login", "/accounts/login/"), ("signup", "/accounts/signup/")]
    logged_in = [
        ("dashboard", "/"),
        ("market", "/market/"),
        ("market-search", "/market/?q=%EC%82%BC%EC%84%B1"),  # ?q=삼성
        ("stock-detail", "/market/005930/"),
        ("strategies", "/strategies/"),
        ("strategy-new", "/strategies/new/"),
        ("strategy-edit", f"/strategies/{config.pk}/"),
        ("strategy-guide", "/strategies/guide/"),
        ("backtests", "/strategies/backtests/"),
        ("backtest-run", f"/strategies/backtests/{runs[0].pk}/"),
        ("backtest-compare", f"/strategies/backtests/compare/?run={runs[0].pk}&run={runs[1].pk}"),
        ("sweep-new", "/strategies/sweeps/new/"),
        ("sweep", f"/strategies/sweeps/{sweep.pk}/"),
        ("walk-forward-new", "/strategies/walk-forward/new/"),
        ("walk-forward", f"/strategies/walk-forward/{walk.pk}/"),
        ("orders", "/orders/"),
        ("reports", "/reports/"),
        ("report", f"/reports/{report.iso_week}/"),
        ("broker-accounts", "/accounts/broker-accounts/"),
        ("broker-account-new", "/accounts/broker-accounts/new/"),
        ("broker-account-edit", f"/accounts/broker-accounts/{account.pk}/"),
        ("password-change", "/accounts/password/change/"),
        ("security-activity", "/accounts/security/"),
        ("two-factor", "/accounts/2fa/"),
    ]
    return logged_out, logged_in


def settle(page) -> None:
    """The page has loaded, HTMX's requests (the quote box, a broker balance) are answered and Chart.js
    has sized its canvases to their boxes."""
    page.wait_for_load_state("load")
    page.wait_for_function("!document.querySelector('.htmx-request')", timeout=10_000)
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")


def check_pages(page, base_url: str, pages, folder: Path, failures: list[str]) -> None:
    for language in LANGUAGES:
        page.context.add_cookies([{"name": "django_language", "value": language, "url": base_url}])
        for viewport_name, size in VIEWPORTS.items():
            page.set_viewport_size(size)
            for name, path in pages:
                label = f"{name} [{viewport_name} {size['width']}px, {language}]"
                response = page.goto(base_url + path)
                if not response.ok:
                    failures.append(f"{label}: {path} answered {response.status}")
                    continue
                settle(page)
                assert page.evaluate("document.documentElement.lang") == language, f"{label}: not in {language}"
                page.screenshot(path=folder / f"{name}-{viewport_name}-{language}.png", full_page=True)
                found = page.evaluate(CHECK_LAYOUT, {"touch": viewport_name == "phone", "minTap": MIN_TAP})
                failures.extend(f"{label}: {problem}" for problem in found)
                # Chart.js's charts follow their box (responsive): none keeps a desktop width on the phone
                charts = page.evaluate("""() => [...document.querySelectorAll("canvas")]
                    .filter((c) => c.offsetParent && window.Chart && Chart.getChart(c))
                    .map((c) => [c.id, Math.round(c.getBoundingClientRect().width), c.parentElement.clientWidth])""")
                for chart_id, width, box in charts:
                    if abs(width - box) > 2:
                        failures.append(f"{label}: chart #{chart_id} is {width} px wide in a {box} px box")


def test_every_page_fits_a_phone_and_a_laptop_in_both_languages(page, live_server, demo_pages, tmp_path):
    logged_out, logged_in = demo_pages
    folder = screenshot_dir(tmp_path)
    failures: list[str] = []
    page.on("dialog", lambda dialog: dialog.dismiss())

    check_pages(page, live_server.url, logged_out, folder, failures)
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", "demo")
    page.fill("input[name=password]", "demo-trader-2026")
    page.locator("form button[type=submit]").last.click()
    expect(page).to_have_url(f"{live_server.url}/")
    check_pages(page, live_server.url, logged_in, folder, failures)

    (folder / "problems.txt").write_text("\n".join(failures) + "\n", encoding="utf-8")
    assert not failures, f"{len(failures)} layout problems (screenshots in {folder}):\n" + "\n".join(failures)


def test_the_checks_catch_a_wide_table_clipped_text_and_a_broken_korean_word(page, live_server):
    """The page checks themselves: a box wider than the phone, text cut off by overflow:hidden and 삼성전자
    squeezed one syllable per line are each reported; a wide table inside .table-scroll is not."""
    page.set_viewport_size(VIEWPORTS["phone"])
    page.goto(f"{live_server.url}/accounts/login/")
    settle(page)
    assert page.evaluate(CHECK_LAYOUT, {"touch": False, "minTap": MIN_TAP}) == []
    page.evaluate("""() => {
        const main = document.querySelector("main");
        main.insertAdjacentHTML("beforeend",
          '<div class="table-scroll"><table class="table" id="scrolled"><tr><td style="min-width:900px">넓은 표</td></tr></table></div>' +
          '<p id="squeezed" style="width:1.2em; word-break:normal">삼성전자</p>' +
          '<h3 id="cut" style="width:60px; overflow:hidden; white-space:nowrap">end-of-period holdings</h3>');
    }""")
    problems = page.evaluate(CHECK_LAYOUT, {"touch": False, "minTap": MIN_TAP})
    assert not any("scrolled" in problem for problem in problems), problems
    assert any(problem.startswith("Korean word broken across lines: 삼성전자") for problem in problems), problems
    assert any(problem.startswith("clipped: h3#cut") for problem in problems), problems
    page.evaluate("""() => document.querySelector("main").insertAdjacentHTML("beforeend",
        '<section class="card" id="wide"><p style="width:900px">넓은 상자</p></section>')""")
    problems = page.evaluate(CHECK_LAYOUT, {"touch": False, "minTap": MIN_TAP})
    assert any(re.search(r'the page is \d+ px wide on a 390 px screen: p "넓은 상자" \(right edge \d+ px\)', problem) for problem in problems), problems
