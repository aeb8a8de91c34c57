// The price chart component of 종목 상세 (the daily chart, market_chart.js) and of the live intraday chart
// (live_market.js): candles in the Korean colours (red up, blue down), lines on the price pane (moving
// average, Bollinger band, the previous close), a volume pane with bars coloured like their candles, an
// optional oscillator pane (the z-score with its ±2.0 levels), markers, and a legend above the chart with
// the date, OHLC, change and volume of the bar under the crosshair (the last bar otherwise).
// TradingView's Lightweight Charts (npm, static/vendor/lightweight-charts) does the drawing, the crosshair,
// zoom and pan (drag, mouse wheel, pinch) and follows the container's size (autoSize).
//
//   var chart = new PriceChart(element, {intraday, labels, lines: [{key, label, color, dashed}], oscillator});
//   chart.setData(bars, {ma: [...], ...}, oscillatorValues); chart.update(bar, {key: value}); chart.showLast(n)
//
// A bar is {time, open, high, low, close, volume}; `time` is "YYYY-MM-DD" for daily bars, or
// PriceChart.minuteTime(day, "HH:MM") for intraday ones (Seoul wall-clock time, which the chart shows as is).
// For tests and the page the element carries data-bars (the bar count) and data-from / data-to (the
// visible bars), and element.priceChart is the component.
(function () {
  "use strict";

  var UP = "#d92d20", DOWN = "#1f5eff", FLAT = "#667085";
  var won = new Intl.NumberFormat("ko-KR");
  var compact = new Intl.NumberFormat("ko-KR", { notation: "compact", maximumFractionDigits: 1 });
  var decimal = new Intl.NumberFormat("ko-KR", { minimumFractionDigits: 2, maximumFractionDigits: 2 });

  var WON_FORMAT = { type: "custom", minMove: 1, formatter: function (v) { return won.format(Math.round(v)); } };

  function colorOf(bar) { return bar.close > bar.open ? UP : bar.close < bar.open ? DOWN : FLAT; }
  function translucent(color) { return color + "80"; }  // the volume bars: the candle's colour, lighter
  function present(v) { return v !== null && v !== undefined; }
  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function node(tag, className, text) {
    var el = document.createElement(tag);
    if (className) { el.className = className; }
    if (text !== undefined) { el.textContent = text; }
    return el;
  }

  function PriceChart(element, options) {
    var LWC = window.LightweightCharts;
    this.element = element;
    this.options = options;
    this.labels = options.labels || {};
    this.intraday = !!options.intraday;
    this.bars = [];
    this.lineSeries = {};
    this.lineValues = {};
    this.hovering = false;
    element.classList.add("price-chart");
    this.legend = node("div", "pc-legend");
    this.legend.setAttribute("aria-live", "off");
    this.canvasBox = node("div", "pc-canvas");
    element.appendChild(this.legend);
    element.appendChild(this.canvasBox);

    this.chart = LWC.createChart(this.canvasBox, {
      autoSize: true,  // follows the box (ResizeObserver): phone, rotation, the sidebar folding away
      layout: {
        background: { type: "solid", color: "#ffffff" }, textColor: "#475467", fontSize: 11,
        // The logo injects a <style> element, which the site's CSP refuses; the page credits TradingView
        // with a link instead (the licence's attribution notice).
        attributionLogo: false,
        panes: { separatorColor: "#e4e7ec", enableResize: true },
      },
      grid: { vertLines: { color: "#f2f4f7" }, horzLines: { color: "#f2f4f7" } },
      crosshair: { mode: LWC.CrosshairMode.Normal },
      rightPriceScale: { borderColor: "#e4e7ec" },
      timeScale: {
        borderColor: "#e4e7ec", timeVisible: this.intraday, secondsVisible: false, rightOffset: 3,
        minBarSpacing: 0.5,
      },
      // each series formats its own axis: won with separators, volume in 만/억, the oscillator to 0.01
      localization: { locale: "ko-KR", dateFormat: "yyyy-MM-dd" },
      // Vertical touch drags scroll the page (a phone would be stuck on the chart otherwise); horizontal
      // drags pan, two fingers zoom.
      handleScroll: { mouseWheel: true, pressedMouseMove: true, horzTouchDrag: true, vertTouchDrag: false },
      handleScale: { mouseWheel: true, pinch: true, axisPressedMouseMove: true, axisDoubleClickReset: true },
    });

    this.candles = this.chart.addSeries(LWC.CandlestickSeries, {
      upColor: UP, downColor: DOWN, borderUpColor: UP, borderDownColor: DOWN, wickUpColor: UP,
      wickDownColor: DOWN, priceFormat: WON_FORMAT,
    });
    (options.lines || []).forEach(function (line) {
      this.lineSeries[line.key] = this.chart.addSeries(LWC.LineSeries, {
        color: line.color, lineWidth: line.width || 1,
        lineStyle: line.dashed ? LWC.LineStyle.Dashed : LWC.LineStyle.Solid,
        priceLineVisible: false, lastValueVisible: false, crosshairMarkerVisible: false, priceFormat: WON_FORMAT,
      });
    }, this);
    this.volume = this.chart.addSeries(LWC.HistogramSeries, {
      priceFormat: { type: "custom", minMove: 1, formatter: function (v) { return compact.format(v); } },
      priceLineVisible: false, lastValueVisible: false,
    }, 1);
    this.volume.priceScale().applyOptions({ scaleMargins: { top: 0.1, bottom: 0 } });
    var panes = this.chart.panes();
    panes[0].setStretchFactor(3);
    panes[1].setStretchFactor(1);

    if (options.oscillator) {
      var osc = options.oscillator;
      var levels = osc.levels || [];
      this.oscillator = this.chart.addSeries(LWC.LineSeries, {
        color: osc.color, lineWidth: 1, priceLineVisible: false, lastValueVisible: true,
        priceFormat: { type: "custom", minMove: 0.01, formatter: function (v) { return decimal.format(v); } },
        // the levels stay in view even when the series stays near zero
        autoscaleInfoProvider: function (original) {
          var found = original();
          if (!found || !levels.length) { return found; }
          var values = levels.map(function (l) { return l.value; });
          found.priceRange.minValue = Math.min(found.priceRange.minValue, Math.min.apply(null, values) - 0.5);
          found.priceRange.maxValue = Math.max(found.priceRange.maxValue, Math.max.apply(null, values) + 0.5);
          return found;
        },
      }, 2);
      levels.forEach(function (level) {
        this.oscillator.createPriceLine({
          price: level.value, color: level.color, lineWidth: 1,
          lineStyle: level.dashed ? LWC.LineStyle.Dashed : LWC.LineStyle.Solid, axisLabelVisible: true,
          title: level.title || "",
        });
      }, this);
      this.chart.panes()[2].setStretchFactor(1.3);
    }
    this.markers = LWC.createSeriesMarkers(this.candles, []);

    var self = this;
    this.chart.subscribeCrosshairMove(function (param) {
      self.hovering = param.time !== undefined;  // a live update leaves the hovered bar's legend alone
      var index = param.time === undefined || param.logical === undefined ? -1 : Math.round(param.logical);
      self.showLegend(index >= 0 && index < self.bars.length ? index : self.bars.length - 1);
    });
    this.chart.timeScale().subscribeVisibleLogicalRangeChange(function (range) {
      if (!range) { return; }
      element.setAttribute("data-from", Math.max(0, Math.round(range.from)));
      element.setAttribute("data-to", Math.min(self.bars.length - 1, Math.round(range.to)));
    });
    element.priceChart = this;
  }

  // Seoul wall-clock minute as a UTC timestamp: the chart shows UTC, so it shows exactly "13:05".
  PriceChart.minuteTime = function (day, minute) {
    return Date.UTC(+day.substring(0, 4), +day.substring(5, 7) - 1, +day.substring(8, 10),
      +minute.substring(0, 2), +minute.substring(3, 5)) / 1000;
  };

  PriceChart.prototype.timeText = function (time) {
    if (typeof time === "string") { return time; }
    var d = new Date(time * 1000);
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " +
      pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes());
  };

  function volumeOf(bar) { return { time: bar.time, value: bar.volume, color: translucent(colorOf(bar)) }; }
  function candleOf(bar) { return { time: bar.time, open: bar.open, high: bar.high, low: bar.low, close: bar.close }; }
  function pointOf(time, value) { return present(value) ? { time: time, value: value } : { time: time }; }

  // bars: [{time, open, high, low, close, volume}]; lines: {key: [value or null, one per bar]};
  // oscillator: [value or null, one per bar]
  PriceChart.prototype.setData = function (bars, lines, oscillator) {
    this.bars = bars.map(function (b) { return Object.assign({}, b); });
    this.lineValues = {};
    this.candles.setData(this.bars.map(candleOf));
    this.volume.setData(this.bars.map(volumeOf));
    Object.keys(this.lineSeries).forEach(function (key) {
      var values = (lines && lines[key]) || [];
      this.lineValues[key] = this.bars.map(function (b, i) { return present(values[i]) ? values[i] : null; });
      this.lineSeries[key].setData(this.bars.map(function (b, i) { return pointOf(b.time, values[i]); }));
    }, this);
    if (this.oscillator) {
      this.oscillatorValues = this.bars.map(function (b, i) {
        return oscillator && present(oscillator[i]) ? oscillator[i] : null;
      });
      this.oscillator.setData(this.bars.map(function (b, i) { return pointOf(b.time, oscillator && oscillator[i]); }));
    }
    this.element.setAttribute("data-bars", this.bars.length);
    this.showLegend(this.bars.length - 1);
  };

  // The last bar changed, or a new one began (a live tick): only that bar is redrawn.
  PriceChart.prototype.update = function (bar, lineValues) {
    var last = this.bars[this.bars.length - 1];
    if (last && bar.time < last.time) { return; }  // older than the chart's last bar: not this chart's to move
    var copy = Object.assign({}, bar);
    var appended = !last || bar.time !== last.time;
    if (appended) {
      this.bars.push(copy);
    } else {
      this.bars[this.bars.length - 1] = copy;
    }
    this.candles.update(candleOf(copy));
    this.volume.update(volumeOf(copy));
    Object.keys(this.lineSeries).forEach(function (key) {
      var value = lineValues && present(lineValues[key]) ? lineValues[key] : null;
      var values = this.lineValues[key] || (this.lineValues[key] = []);
      if (appended) { values.push(value); } else if (value !== null) { values[values.length - 1] = value; }
      if (appended || value !== null) { this.lineSeries[key].update(pointOf(copy.time, values[values.length - 1])); }
    }, this);
    if (this.oscillator && appended) {
      this.oscillatorValues.push(null);
      this.oscillator.update({ time: copy.time });
    }
    this.element.setAttribute("data-bars", this.bars.length);
    if (!this.hovering) { this.showLegend(this.bars.length - 1); }
  };

  // One value of a line for every bar (e.g. the previous close after a reconnect).
  PriceChart.prototype.setLine = function (key, values) {
    this.lineValues[key] = values.slice();
    this.lineSeries[key].setData(this.bars.map(function (b, i) { return pointOf(b.time, values[i]); }));
  };

  // markers: [{time, kind: "up" | "down" | "dot", color, text}]; `notes` (optional) adds lines to the legend
  // of a bar: {time: ["text", ...]}
  PriceChart.prototype.setMarkers = function (markers, notes) {
    this.notes = notes || {};
    this.markers.setMarkers(markers.map(function (m) {
      return {
        time: m.time, color: m.color, text: m.text || "",
        shape: m.kind === "up" ? "arrowUp" : m.kind === "down" ? "arrowDown" : "circle",
        position: m.kind === "down" ? "aboveBar" : "belowBar",
      };
    }));
  };

  // The last `count` bars fill the chart (0: all of them).
  PriceChart.prototype.showLast = function (count) {
    var n = this.bars.length;
    if (!n) { return; }
    if (!count || count >= n) {
      this.chart.timeScale().fitContent();
    } else {
      this.chart.timeScale().setVisibleLogicalRange({ from: n - count - 0.5, to: n - 0.5 + 3 });
    }
  };

  PriceChart.prototype.showLegend = function (index) {
    var bar = this.bars[index];
    var legend = this.legend;
    while (legend.firstChild) { legend.removeChild(legend.firstChild); }
    if (!bar) { legend.removeAttribute("data-time"); return; }
    var labels = this.labels;
    var previous = this.bars[index - 1];
    var base = previous ? previous.close : bar.open;
    var tone = bar.close > base ? "up" : bar.close < base ? "down" : "";
    legend.setAttribute("data-time", this.timeText(bar.time));
    legend.appendChild(node("span", "pc-time", this.timeText(bar.time)));
    [["open", bar.open], ["high", bar.high], ["low", bar.low], ["close", bar.close]].forEach(function (pair) {
      var item = node("span", "pc-item");
      item.setAttribute("data-key", pair[0]);
      item.appendChild(node("span", "pc-label", labels[pair[0]] || pair[0]));
      item.appendChild(node("b", pair[0] === "close" ? tone : "", won.format(pair[1])));
      legend.appendChild(item);
    });
    if (base) {
      var change = (bar.close - base) * 100 / base;
      legend.appendChild(node("span", "pc-change " + tone, (change > 0 ? "+" : "") + decimal.format(change) + "%"));
    }
    var volume = node("span", "pc-item");
    volume.setAttribute("data-key", "volume");
    volume.appendChild(node("span", "pc-label", labels.volume || "volume"));
    volume.appendChild(node("b", "", won.format(bar.volume)));
    legend.appendChild(volume);
    (this.options.lines || []).forEach(function (line) {
      var value = this.lineValues && this.lineValues[line.key] ? this.lineValues[line.key][index] : null;
      if (!present(value)) { return; }
      var item = node("span", "pc-item pc-line");
      item.setAttribute("data-key", line.key);
      var swatch = node("span", "pc-swatch");
      swatch.style.backgroundColor = line.color;  // CSSOM, not a style attribute in markup
      item.appendChild(swatch);
      item.appendChild(node("span", "pc-label", line.label));
      item.appendChild(node("b", "", won.format(Math.round(value))));
      legend.appendChild(item);
    }, this);
    if (this.oscillator && this.oscillatorValues && present(this.oscillatorValues[index])) {
      var osc = node("span", "pc-item pc-line");
      osc.setAttribute("data-key", "oscillator");
      var swatch = node("span", "pc-swatch");
      swatch.style.backgroundColor = this.options.oscillator.color;
      osc.appendChild(swatch);
      osc.appendChild(node("span", "pc-label", this.options.oscillator.label));
      osc.appendChild(node("b", "", decimal.format(this.oscillatorValues[index])));
      legend.appendChild(osc);
    }
    ((this.notes || {})[bar.time] || []).forEach(function (text) {
      legend.appendChild(node("span", "pc-note", text));
    });
  };

  PriceChart.prototype.lastBar = function () { return this.bars[this.bars.length - 1] || null; };

  window.PriceChart = PriceChart;
})();
