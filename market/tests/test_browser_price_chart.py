"""In a real browser: 종목 상세's daily candle chart (static/js/price_chart.js on Lightweight Charts) on the
demo market's bars: candles drawn in the Korean colours, the crosshair legend with the day's OHLC and
volume, zoom by mouse wheel, pan by drag, and a phone-wide page that the chart fits. No CSP violation (the
`page` fixture fails the test on one)."""

import datetime as dt
import io

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from market.krx import SEOUL
from market.models import DailyBar

WEDNESDAY = dt.datetime(2026, 11, 25, 13, 0, tzinfo=SEOUL)
CODE = "005930"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.time_machine(WEDNESDAY, tick=False)]

# The chart's own picture (takeScreenshot: every pane's canvases in one), counted by colour: the up candles'
# red (#d92d20) and the down candles' blue (#1f5eff), exactly as drawn (the volume bars are translucent).
COUNT_CANDLE_PIXELS = """() => {
  const shot = document.getElementById("price-chart").priceChart.chart.takeScreenshot();
  const pixels = shot.getContext("2d").getImageData(0, 0, shot.width, shot.height).data;
  let red = 0, blue = 0, blank = 0;
  for (let i = 0; i < pixels.length; i += 4) {
    const [r, g, b] = [pixels[i], pixels[i + 1], pixels[i + 2]];
    if (r === 0xd9 && g === 0x2d && b === 0x20) red++;
    else if (r === 0x1f && g === 0x5e && b === 0xff) blue++;
    else if (r === 255 && g === 255 && b === 255) blank++;
  }
  return {red, blue, blank, total: pixels.length / 4};
}"""


def log_in_as_demo(page, live_server):
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", "demo")
    page.fill("input[name=password]", "demo-trader-2026")
    page.locator("form button[type=submit]").last.click()
    expect(page).to_have_url(f"{live_server.url}/")


def visible_bars(chart) -> tuple[int, int]:
    return int(chart.get_attribute("data-from")), int(chart.get_attribute("data-to"))


@pytest.fixture
def demo_page(page, live_server):
    call_command("setup_demo", symbols=3, years=1, stdout=io.StringIO())
    log_in_as_demo(page, live_server)
    page.goto(f"{live_server.url}/market/{CODE}/")
    page.wait_for_function("window.marketCharts !== undefined")
    return page


def test_candles_crosshair_legend_zoom_and_pan(demo_page):
    page = demo_page
    bars = list(DailyBar.objects.filter(instrument__code=CODE).order_by("date"))
    chart = page.locator("#price-chart")
    expect(chart).to_have_attribute("data-bars", str(len(bars)))

    # drawn: red and blue candles on a white chart
    pixels = page.evaluate(COUNT_CANDLE_PIXELS)
    assert pixels["red"] > 200 and pixels["blue"] > 200, pixels
    assert pixels["blank"] < pixels["total"]

    # without a pointer the legend shows the last day
    legend = chart.locator(".pc-legend")
    expect(legend).to_have_attribute("data-time", bars[-1].date.isoformat())

    # the crosshair on a candle: the legend has that day's date, open, high, low, close and volume
    canvas = page.locator("#price-chart .pc-canvas")
    canvas.scroll_into_view_if_needed()  # below the live chart and the quote: the mouse reaches the viewport only
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.3, steps=5)
    expect(legend).not_to_have_attribute("data-time", bars[-1].date.isoformat())
    day = dt.date.fromisoformat(legend.get_attribute("data-time"))
    bar = next(b for b in bars if b.date == day)
    for key, value in (("open", bar.open), ("high", bar.high), ("low", bar.low), ("close", bar.close),
                       ("volume", bar.volume)):
        expect(legend.locator(f"[data-key={key}] b")).to_have_text(f"{value:,}")
    expect(legend.locator("[data-key=open] .pc-label")).to_have_text("시가")
    expect(legend.locator("[data-key=ma]")).to_contain_text("이평 20")  # the moving average that day

    # the mouse wheel zooms in: fewer days in view, around the same place
    before = visible_bars(chart)
    page.mouse.wheel(0, -600)
    page.wait_for_function(
        "(span) => { const c = document.getElementById('price-chart');"
        " return c.dataset.to - c.dataset.from < span; }", before[1] - before[0])
    zoomed = visible_bars(chart)
    assert zoomed[1] - zoomed[0] < before[1] - before[0]

    # a drag to the right pans back in time
    x, y = box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.3
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 150, y, steps=8)
    page.mouse.up()
    page.wait_for_function("(to) => Number(document.getElementById('price-chart').dataset.to) < to", zoomed[1])


def test_the_chart_fits_a_phone(demo_page):
    page = demo_page
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    page.wait_for_function("window.marketCharts !== undefined")
    chart = page.locator("#price-chart")
    box = chart.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert box["width"] > 300  # the card's width, not a fixed desktop size
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing sticks out sideways
    # the chart's own canvases follow the box (autoSize), and candles are drawn
    assert page.evaluate("document.getElementById('price-chart').priceChart.chart.timeScale().width()") < box["width"]
    pixels = page.evaluate(COUNT_CANDLE_PIXELS)
    assert pixels["red"] > 50 and pixels["blue"] > 50, pixels
    expect(chart.locator(".pc-legend [data-key=close] b")).to_be_visible()
