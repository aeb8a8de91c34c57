// 대시보드: the paper account's equity line. The numbers come from the server in
// <script type="application/json" id="equity-chart-data"> (json_script); this file only draws.
// Chart.js is loaded with `defer` before this file, so both are there on DOMContentLoaded.
(function () {
  "use strict";

  function draw() {
    var node = document.getElementById("equity-chart-data");
    var canvas = document.getElementById("equity-chart");
    if (!node || !canvas || !window.Chart) { return; }
    var data = JSON.parse(node.textContent);
    var won = new Intl.NumberFormat("ko-KR", { maximumFractionDigits: 0 });
    new window.Chart(canvas, {
      type: "line",
      data: { labels: data.labels, datasets: [{ label: data.label, data: data.values, borderColor: "#1f5eff",
        backgroundColor: "rgba(31, 94, 255, 0.12)", fill: "origin", borderWidth: 1.5, tension: 0,
        pointRadius: data.values.length < 30 ? 3 : 0 }] },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { display: false },
          tooltip: { callbacks: { label: function (ctx) { return won.format(ctx.raw) + "원"; } } } },
        scales: { x: { ticks: { maxTicksLimit: 8, maxRotation: 0, autoSkipPadding: 16 }, grid: { display: false } },
          y: { position: "right", beginAtZero: false, ticks: { callback: function (v) { return won.format(v); } } } },
      },
    });
  }

  document.addEventListener("DOMContentLoaded", draw);
})();
