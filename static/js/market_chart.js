// 종목 상세: the daily chart (static/js/price_chart.js): candles with the 20-day moving average and the
// Bollinger band (±2σ), the volume pane, the z-score pane with its ±2.0 levels, and ▲ on the outlier days.
// Every number is computed on the server and handed over in <script id="chart-data" type="application/json">
// (json_script); this file only draws, and the period buttons choose how many days fill the chart.
(function () {
  "use strict";

  var COLORS = { ma: "#f79009", band: "#7a5af8", z: "#0e9384", threshold: "#d92d20", zero: "#98a2b3", outlier: "#7a5af8" };
  var number = new Intl.NumberFormat("ko-KR", { maximumFractionDigits: 2 });

  function build(element, data) {
    var labels = data.labels;
    var chart = new window.PriceChart(element, {
      labels: labels,
      lines: [
        { key: "ma", label: labels.ma, color: COLORS.ma, width: 2 },
        { key: "upper", label: labels.upper, color: COLORS.band, dashed: true },
        { key: "lower", label: labels.lower, color: COLORS.band, dashed: true },
      ],
      oscillator: {
        label: labels.z, color: COLORS.z,
        levels: [
          { value: data.threshold, color: COLORS.threshold, dashed: true },
          { value: 0, color: COLORS.zero },
          { value: -data.threshold, color: COLORS.threshold, dashed: true },
        ],
      },
    });
    var bars = data.dates.map(function (date, i) {
      return { time: date, open: data.open[i], high: data.high[i], low: data.low[i], close: data.close[i],
        volume: data.volume[i] };
    });
    chart.setData(bars, { ma: data.ma, upper: data.upper, lower: data.lower }, data.z);
    var notes = {};
    var markers = Object.keys(data.outliers).filter(function (date) { return data.dates.indexOf(date) >= 0; })
      .sort().map(function (date) {
        notes[date] = data.outliers[date].map(function (o) {
          var series = o.series === "volume" ? labels.volume_series : labels.close_series;
          return "▲ " + labels.outlier + " · " + series + " · " + o.method + " (" + number.format(o.score) + ")";
        });
        return { time: date, kind: "up", color: COLORS.outlier };
      });
    chart.setMarkers(markers, notes);

    function show(days) { chart.showLast(days); }
    var buttons = document.querySelectorAll(".range-buttons [data-range]");
    buttons.forEach(function (button) {
      button.addEventListener("click", function () {
        buttons.forEach(function (b) { b.setAttribute("aria-pressed", b === button ? "true" : "false"); });
        show(parseInt(button.getAttribute("data-range"), 10));
      });
    });
    var initial = document.querySelector(".range-buttons [aria-pressed=true]");
    show(initial ? parseInt(initial.getAttribute("data-range"), 10) : 0);
    window.marketCharts = { price: chart, show: show };
  }

  document.addEventListener("DOMContentLoaded", function () {
    var source = document.getElementById("chart-data");
    var element = document.getElementById("price-chart");
    if (!source || !element || !window.PriceChart || !window.LightweightCharts) { return; }
    build(element, JSON.parse(source.textContent));
  });
})();
