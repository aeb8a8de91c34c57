// 리포트 page: the week's equity (portfolio vs the equal-weight benchmark on the same start) and the
// traded amounts per day. Every number comes from the server in <script type="application/json">
// (json_script); this file only draws.
(function () {
  "use strict";

  var won = new Intl.NumberFormat("ko-KR", { maximumFractionDigits: 0 });

  function readJson(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  function baseOptions() {
    return {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      plugins: {
        legend: { labels: { boxWidth: 12, usePointStyle: true } },
        tooltip: { callbacks: { label: function (ctx) {
          return ctx.dataset.label + ": " + (ctx.raw === null ? "–" : won.format(ctx.raw) + "원");
        } } },
      },
      scales: {
        x: { grid: { display: false } },
        y: { position: "right", ticks: { callback: function (v) { return won.format(v); } } },
      },
    };
  }

  function draw(data) {
    var equity = new window.Chart(document.getElementById("report-equity-chart"), {
      type: "line",
      data: {
        labels: data.dates,
        datasets: [
          { label: data.labels.equity, data: data.equity, borderColor: "#1f5eff",
            backgroundColor: "rgba(31, 94, 255, 0.12)", fill: false, tension: 0, pointRadius: 3 },
          { label: data.labels.benchmark, data: data.benchmark, borderColor: "#667085", borderDash: [6, 4],
            borderWidth: 1.2, tension: 0, pointRadius: 2, spanGaps: true },
        ],
      },
      options: baseOptions(),
    });
    var trades = new window.Chart(document.getElementById("report-trades-chart"), {
      type: "bar",
      data: {
        labels: data.dates,
        datasets: [
          { label: data.labels.bought, data: data.bought, backgroundColor: "rgba(217, 45, 32, 0.7)" },
          { label: data.labels.sold, data: data.sold, backgroundColor: "rgba(31, 94, 255, 0.7)" },
        ],
      },
      options: baseOptions(),
    });
    return { equity: equity, trades: trades };
  }

  document.addEventListener("DOMContentLoaded", function () {
    var data = readJson("report-chart-data");
    if (!data || !window.Chart) return;
    window.reportCharts = draw(data);
  });
})();
