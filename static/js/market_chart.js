// 종목 상세: the price chart (close, 20-day MA, Bollinger band, volume bars, outlier markers) and the
// z-score panel with its ±2.0 threshold lines. Every number is computed on the server and handed over
// in <script id="chart-data" type="application/json"> (json_script); this file only draws.
(function () {
  "use strict";

  var COLORS = {
    close: "#1d2330",
    ma: "#f79009",
    band: "rgba(31, 94, 255, 0.45)",
    bandFill: "rgba(31, 94, 255, 0.08)",
    volume: "rgba(102, 112, 133, 0.35)",
    outlier: "#d92d20",
    z: "#7a5af8",
    threshold: "rgba(217, 45, 32, 0.8)",
    zero: "rgba(102, 112, 133, 0.6)",
  };
  var number = new Intl.NumberFormat("ko-KR", { maximumFractionDigits: 2 });

  function constant(length, value) {
    var out = new Array(length);
    for (var i = 0; i < length; i++) out[i] = value;
    return out;
  }

  // Legend in dataset order (close first), not in drawing order.
  function byDataset(a, b) { return a.datasetIndex - b.datasetIndex; }

  function present(item) { return item.raw !== null && item.raw !== undefined; }

  function describe(data, date) {
    return (data.outliers[date] || []).map(function (o) {
      var series = o.series === "volume" ? data.labels.volume_series : data.labels.close_series;
      return series + " · " + o.method + " (" + number.format(o.score) + ")";
    });
  }

  function build(data) {
    var n = data.dates.length;
    var markers = data.dates.map(function (date, i) { return data.outliers[date] ? data.close[i] : null; });
    var zMarkers = data.dates.map(function (date, i) { return data.outliers[date] ? data.z[i] : null; });
    var full = {
      dates: data.dates, close: data.close, volume: data.volume, ma: data.ma, upper: data.upper,
      lower: data.lower, z: data.z, markers: markers, zMarkers: zMarkers,
      plus: constant(n, data.threshold), minus: constant(n, -data.threshold), zero: constant(n, 0),
    };

    var common = {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      elements: { point: { radius: 0, hoverRadius: 3 }, line: { borderWidth: 1.5, tension: 0 } },
      plugins: {
        legend: { labels: { boxWidth: 12, usePointStyle: true, sort: byDataset } },
      },
    };
    var xAxis = { ticks: { maxTicksLimit: 8, maxRotation: 0, autoSkip: true }, grid: { display: false } };

    var price = new window.Chart(document.getElementById("price-chart"), {
      type: "line",
      data: {
        labels: [],
        datasets: [
          { label: data.labels.close, key: "close", data: [], borderColor: COLORS.close, order: 1 },
          { label: data.labels.ma, key: "ma", data: [], borderColor: COLORS.ma, order: 2 },
          { label: data.labels.upper, key: "upper", data: [], borderColor: COLORS.band, borderWidth: 1,
            fill: "+1", backgroundColor: COLORS.bandFill, order: 3 },
          { label: data.labels.lower, key: "lower", data: [], borderColor: COLORS.band, borderWidth: 1,
            fill: false, order: 3 },
          { label: data.labels.outlier, key: "markers", data: [], showLine: false, pointStyle: "triangle",
            pointRadius: 6, pointHoverRadius: 8, borderColor: COLORS.outlier, backgroundColor: COLORS.outlier,
            order: 0 },
          { label: data.labels.volume, key: "volume", type: "bar", data: [], yAxisID: "volume",
            backgroundColor: COLORS.volume, barPercentage: 1.0, categoryPercentage: 1.0, order: 4 },
        ],
      },
      options: Object.assign({}, common, {
        scales: {
          x: xAxis,
          y: {
            position: "right",
            ticks: { callback: function (v) { return number.format(v); } },
            // Leave the bottom quarter to the volume bars.
            afterDataLimits: function (scale) { scale.min -= (scale.max - scale.min) / 3; },
          },
          // Volume bars fill the bottom quarter of the chart.
          volume: { position: "left", display: false, beginAtZero: true, grid: { display: false } },
        },
        plugins: Object.assign({}, common.plugins, {
          tooltip: {
            filter: present,
            callbacks: {
              label: function (ctx) {
                if (ctx.dataset.key === "markers") {
                  return describe(data, ctx.label).map(function (t) { return "▲ " + t; });
                }
                return ctx.dataset.label + ": " + number.format(ctx.raw);
              },
            },
          },
        }),
      }),
    });

    var zscore = new window.Chart(document.getElementById("zscore-chart"), {
      type: "line",
      data: {
        labels: [],
        datasets: [
          { label: data.labels.z, key: "z", data: [], borderColor: COLORS.z, order: 1 },
          { label: data.labels.threshold, key: "plus", data: [], borderColor: COLORS.threshold, borderDash: [6, 4],
            borderWidth: 1, order: 2 },
          { label: "", key: "minus", data: [], borderColor: COLORS.threshold, borderDash: [6, 4], borderWidth: 1,
            order: 2 },
          { label: "", key: "zero", data: [], borderColor: COLORS.zero, borderWidth: 1, order: 3 },
          { label: data.labels.outlier, key: "zMarkers", data: [], showLine: false, pointStyle: "triangle",
            pointRadius: 5, borderColor: COLORS.outlier, backgroundColor: COLORS.outlier, order: 0 },
        ],
      },
      options: Object.assign({}, common, {
        scales: { x: xAxis, y: { position: "right", suggestedMin: -3, suggestedMax: 3 } },
        plugins: {
          legend: {
            labels: {
              boxWidth: 12, usePointStyle: true, sort: byDataset,
              filter: function (item) { return item.text !== ""; },
            },
          },
          tooltip: {
            filter: function (item) {
              return present(item) && (item.dataset.key === "z" || item.dataset.key === "zMarkers");
            },
            callbacks: {
              label: function (ctx) {
                if (ctx.dataset.key === "zMarkers") {
                  return describe(data, ctx.label).map(function (t) { return "▲ " + t; });
                }
                return ctx.dataset.label + ": " + number.format(ctx.raw);
              },
            },
          },
        },
      }),
    });

    function show(days) {
      var from = days > 0 ? Math.max(0, n - days) : 0;
      price.options.scales.volume.max = Math.max.apply(null, full.volume.slice(from).concat([1])) * 4;
      [price, zscore].forEach(function (chart) {
        chart.data.labels = full.dates.slice(from);
        chart.data.datasets.forEach(function (ds) { ds.data = full[ds.key].slice(from); });
        chart.update("none");
      });
    }

    document.querySelectorAll(".range-buttons [data-range]").forEach(function (button) {
      button.addEventListener("click", function () {
        document.querySelectorAll(".range-buttons [data-range]").forEach(function (b) {
          b.setAttribute("aria-pressed", b === button ? "true" : "false");
        });
        show(parseInt(button.getAttribute("data-range"), 10));
      });
    });
    var initial = document.querySelector(".range-buttons [aria-pressed=true]");
    show(initial ? parseInt(initial.getAttribute("data-range"), 10) : 0);
    window.marketCharts = { price: price, zscore: zscore, show: show };
  }

  document.addEventListener("DOMContentLoaded", function () {
    var source = document.getElementById("chart-data");
    if (!source || !window.Chart) return;
    build(JSON.parse(source.textContent));
  });
})();
