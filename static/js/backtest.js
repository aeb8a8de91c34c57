// 백테스트 pages: the equity and drawdown charts of a run (strategy vs buy-and-hold), the comparison
// chart of two runs, sortable tables (click a header) and the "compare two runs" picker. Every number
// comes from the server in <script type="application/json"> (json_script); this file only draws.
(function () {
  "use strict";

  var COLORS = {
    strategy: "#1f5eff",
    strategyFill: "rgba(31, 94, 255, 0.12)",
    benchmark: "#667085",
    benchmarkFill: "rgba(102, 112, 133, 0.10)",
    drawdown: "#d92d20",
    drawdownFill: "rgba(217, 45, 32, 0.15)",
    second: "#f79009",
  };
  var won = new Intl.NumberFormat("ko-KR", { maximumFractionDigits: 0 });
  var pct = new Intl.NumberFormat("ko-KR", { style: "percent", maximumFractionDigits: 1 });
  var pct2 = new Intl.NumberFormat("ko-KR", { style: "percent", minimumFractionDigits: 2, maximumFractionDigits: 2 });

  function readJson(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  function present(item) { return item.raw !== null && item.raw !== undefined; }

  function baseOptions() {
    return {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      elements: { point: { radius: 0, hoverRadius: 3 }, line: { borderWidth: 1.5, tension: 0 } },
      plugins: { legend: { labels: { boxWidth: 12, usePointStyle: true } }, tooltip: { filter: present } },
      scales: { x: { ticks: { maxTicksLimit: 8, maxRotation: 0, autoSkip: true, autoSkipPadding: 16 }, grid: { display: false } } },
    };
  }

  function runCharts(data) {
    var equitySets = [
      { label: data.labels.equity, data: data.equity, borderColor: COLORS.strategy, backgroundColor: COLORS.strategyFill },
    ];
    if (data.benchmark) {
      equitySets.push({ label: data.labels.benchmark, data: data.benchmark, borderColor: COLORS.benchmark,
        borderDash: [6, 4], borderWidth: 1.2 });
    }
    var equityOptions = baseOptions();
    equityOptions.scales.y = { position: "right", ticks: { callback: function (v) { return won.format(v); } } };
    equityOptions.plugins.tooltip.callbacks = {
      label: function (ctx) { return ctx.dataset.label + ": " + won.format(ctx.raw) + "원"; },
    };
    var equity = new window.Chart(document.getElementById("equity-chart"), {
      type: "line", data: { labels: data.dates, datasets: equitySets }, options: equityOptions,
    });

    var drawdownSets = [
      { label: data.labels.drawdown, data: data.drawdown, borderColor: COLORS.drawdown,
        backgroundColor: COLORS.drawdownFill, fill: "origin" },
    ];
    if (data.benchmark_drawdown) {
      drawdownSets.push({ label: data.labels.benchmark_drawdown, data: data.benchmark_drawdown,
        borderColor: COLORS.benchmark, borderDash: [6, 4], borderWidth: 1.2 });
    }
    var drawdownOptions = baseOptions();
    drawdownOptions.scales.y = { position: "right", suggestedMax: 0,
      ticks: { callback: function (v) { return pct.format(v); } } };
    drawdownOptions.plugins.tooltip.callbacks = {
      label: function (ctx) { return ctx.dataset.label + ": " + pct2.format(ctx.raw); },
    };
    var drawdown = new window.Chart(document.getElementById("drawdown-chart"), {
      type: "line", data: { labels: data.dates, datasets: drawdownSets }, options: drawdownOptions,
    });
    return { equity: equity, drawdown: drawdown };
  }

  function compareChart(data) {
    var colors = [COLORS.strategy, COLORS.second];
    var options = baseOptions();
    options.spanGaps = true;
    options.scales.y = { position: "right", ticks: { callback: function (v) { return won.format(v); } } };
    options.plugins.tooltip.callbacks = {
      label: function (ctx) { return ctx.dataset.label + ": " + won.format(ctx.raw) + "원"; },
    };
    return new window.Chart(document.getElementById("compare-chart"), {
      type: "line",
      data: {
        labels: data.dates,
        datasets: data.series.map(function (s, i) {
          return { label: s.label, data: s.values, borderColor: colors[i % colors.length], spanGaps: true };
        }),
      },
      options: options,
    });
  }

  // --- sortable tables: <table data-sortable>, <th data-sort="number|text"><button>, <td data-value>
  function cellValue(row, index, numeric) {
    var cell = row.cells[index];
    var raw = cell ? (cell.getAttribute("data-value") || cell.textContent.trim()) : "";
    if (!numeric) return raw;
    var value = parseFloat(raw);
    return isNaN(value) ? null : value;
  }

  function sortTable(header) {
    var table = header.closest("table");
    var index = Array.prototype.indexOf.call(header.parentNode.children, header);
    var numeric = header.getAttribute("data-sort") === "number";
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a, index, numeric), y = cellValue(b, index, numeric);
      if (x === y) return 0;
      if (x === null) return 1; // empty values last, whichever the direction
      if (y === null) return -1;
      var order = numeric ? x - y : String(x).localeCompare(String(y), "ko");
      return ascending ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    table.querySelectorAll("th[data-sort]").forEach(function (th) { th.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  }

  document.addEventListener("click", function (event) {
    var header = event.target.closest("table[data-sortable] th[data-sort]");
    if (header) sortTable(header);
  });

  // --- the runs list: compare exactly two ticked runs
  function comparePicker(form) {
    var button = form.querySelector("#compare-button");
    function update() {
      var ticked = form.querySelectorAll("input[name=run]:checked");
      button.disabled = ticked.length !== 2;
      form.querySelectorAll("input[name=run]").forEach(function (box) {
        box.disabled = !box.checked && ticked.length >= 2;
      });
    }
    form.addEventListener("change", update);
    update();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("compare-form");
    if (form) comparePicker(form);
    if (!window.Chart) return;
    var run = readJson("run-chart-data");
    var compare = readJson("compare-chart-data");
    window.backtestCharts = {
      run: run ? runCharts(run) : null,
      compare: compare ? compareChart(compare) : null,
    };
  });
})();
