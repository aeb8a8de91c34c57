// Walk-forward page: the stitched out-of-sample equity (Chart.js) with the initial cash as a dashed
// line. The numbers come from the server (json_script); the results arrive by HTMX polling, so the
// chart is drawn on page load and again whenever HTMX swaps the results in.
(function () {
  "use strict";

  var won = new Intl.NumberFormat("ko-KR", { maximumFractionDigits: 0 });

  function draw() {
    var canvas = document.getElementById("walk-forward-chart");
    var node = document.getElementById("walk-forward-chart-data");
    if (!canvas || !node || !window.Chart || canvas.getAttribute("data-drawn")) return;
    canvas.setAttribute("data-drawn", "1");
    var data = JSON.parse(node.textContent);
    var initial = data.dates.map(function () { return data.initial; });
    window.walkForwardChart = new window.Chart(canvas, {
      type: "line",
      data: {
        labels: data.dates,
        datasets: [
          { label: data.labels.equity, data: data.equity, borderColor: "#1f5eff",
            backgroundColor: "rgba(31, 94, 255, 0.12)" },
          { label: data.labels.initial, data: initial, borderColor: "#667085", borderDash: [6, 4],
            borderWidth: 1 },
        ],
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        elements: { point: { radius: 0, hoverRadius: 3 }, line: { borderWidth: 1.5, tension: 0 } },
        plugins: {
          legend: { labels: { boxWidth: 12, usePointStyle: true } },
          tooltip: { callbacks: { label: function (ctx) { return ctx.dataset.label + ": " + won.format(ctx.raw) + "원"; } } },
        },
        scales: {
          x: { ticks: { maxTicksLimit: 8, maxRotation: 0, autoSkip: true, autoSkipPadding: 16 }, grid: { display: false } },
          y: { position: "right", ticks: { callback: function (v) { return won.format(v); } } },
        },
      },
    });
  }

  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("htmx:load", draw);
})();
