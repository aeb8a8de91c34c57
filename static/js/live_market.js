// 종목 상세, live: the intraday chart (price_chart.js: 1-minute candles and volume built here from each trade,
// on top of today's stored candles), the previous close, VI / 상한가 / 하한가 marks, the live quote and the 10-level 호가,
// and the daily chart's last bar, all from the page's Server-Sent Events stream (market/streaming/sse.py).
// The server hands over the starting point in <script id="live-data" type="application/json">.
// While the stream is live the 30-second REST quote polling is held back; it comes back when the stream is
// unavailable (the server says why: EventSource cannot read an error's body, so the page asks once more
// with ?probe=1).
(function () {
  "use strict";

  var UP = "#d92d20", DOWN = "#1f5eff", FLAT = "#667085", VI = "#f79009";
  var MAX_CANDLES = 400;
  var STALE_MS = 20000;
  var DRAW_EVERY_MS = 200;
  var won = new Intl.NumberFormat("ko-KR");
  var seoulClock = new Intl.DateTimeFormat("en-GB", {
    timeZone: "Asia/Seoul", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  });

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (_, key) {
      return values[key] === undefined || values[key] === null ? "" : values[key];
    });
  }
  function clock(date) { return seoulClock.format(date); }
  function isoClock(iso) { return iso ? iso.substring(11, 19) : ""; }
  function byId(id) { return document.getElementById(id); }
  function setText(id, text) { var node = byId(id); if (node) { node.textContent = text; } }
  function signed(n) { return (n > 0 ? "▲ " : n < 0 ? "▼ " : "") + won.format(Math.abs(n)); }
  function direction(n) { return n > 0 ? "up" : n < 0 ? "down" : ""; }

  function LiveMarket(data) {
    this.data = data;
    this.labels = data.labels;
    this.day = data.day;
    this.candles = (data.bars || []).map(function (b) {
      return { minute: b.minute, o: b.open, h: b.high, l: b.low, c: b.close, v: b.volume };
    });
    this.marks = [];
    this.version = 0;  // bumped by a change a one-bar update cannot draw (see draw)
    this.previousClose = data.previous_close;
    this.limits = data.limits || {};
    this.session = data.session;
    this.lastTick = null;
    this.lastTickAt = 0;
    this.open = false;
    this.unavailable = null;
    this.reconnectingSince = null;
    this.gap = null;
    this.upstream = null;
    this.viActive = false;
    this.atUpper = false;
    this.atLower = false;
    this.drawPending = false;
    this.lastDraw = 0;
    this.chart = null;
    this.buildOrderBook();
    this.draw();
    this.renderStatus();
  }

  LiveMarket.prototype.buildChart = function () {
    // the same component as the daily chart (price_chart.js): candles, volume pane, crosshair legend, zoom
    var box = byId("intraday-chart-box");
    if (!box || !window.PriceChart || !window.LightweightCharts) { return null; }
    var labels = this.labels;
    return new window.PriceChart(box, {
      intraday: true,
      labels: labels,
      lines: [{ key: "previous", label: labels.previous_close, color: FLAT, dashed: true }],
    });
  };

  // ---------------------------------------------------------------------------------------- candles
  LiveMarket.prototype.applyTick = function (t) {
    var day = t.t.substring(0, 10);
    if (day > this.day) {  // a new day (the simulator past midnight): a new chart
      this.day = day;
      this.candles = [];
      this.marks = [];
      this.version += 1;
    } else if (day < this.day) {
      return;
    }
    var minute = t.t.substring(11, 16);
    var candles = this.candles;
    var last = candles[candles.length - 1];
    if (!last || minute > last.minute) {
      candles.push({ minute: minute, o: t.p, h: t.p, l: t.p, c: t.p, v: t.v });
      if (candles.length > MAX_CANDLES) { candles.shift(); this.version += 1; }
    } else if (minute === last.minute) {
      last.h = Math.max(last.h, t.p);
      last.l = Math.min(last.l, t.p);
      last.c = t.p;
      last.v += t.v;
    } else {  // a late trade of an earlier minute: its range and volume, not its close
      this.version += 1;
      for (var i = candles.length - 1; i >= 0; i--) {
        if (candles[i].minute === minute) {
          candles[i].h = Math.max(candles[i].h, t.p);
          candles[i].l = Math.min(candles[i].l, t.p);
          candles[i].v += t.v;
          break;
        }
      }
    }
    this.previousClose = t.p - t.chg;
    this.markTick(t, minute);
  };

  LiveMarket.prototype.markTick = function (t, minute) {
    var before = this.marks.length;
    if (t.vi > 0 && !this.viActive) { this.marks.push({ kind: "vi", minute: minute, price: t.p }); }
    this.viActive = t.vi > 0;
    var upper = this.limits.upper, lower = this.limits.lower;
    var atUpper = !!upper && t.p >= upper, atLower = !!lower && t.p <= lower;
    if (atUpper && !this.atUpper) { this.marks.push({ kind: "upper", minute: minute, price: t.p }); }
    if (atLower && !this.atLower) { this.marks.push({ kind: "lower", minute: minute, price: t.p }); }
    this.atUpper = atUpper;
    this.atLower = atLower;
    if (this.marks.length !== before) { this.version += 1; }  // a new mark: the markers are drawn again
  };

  LiveMarket.prototype.replaceBars = function (bars) {
    // a reconnect: the stored candles cover the gap; the minutes after them stay as built here
    var stored = bars.map(function (b) { return { minute: b.minute, o: b.open, h: b.high, l: b.low, c: b.close, v: b.volume }; });
    var lastStored = stored.length ? stored[stored.length - 1].minute : "";
    var newer = this.candles.filter(function (c) { return c.minute > lastStored; });
    this.candles = stored.concat(newer).slice(-MAX_CANDLES);
    this.version += 1;
  };

  LiveMarket.prototype.scheduleDraw = function () {
    if (this.drawPending) { return; }
    this.drawPending = true;
    var self = this;
    var wait = Math.max(0, DRAW_EVERY_MS - (Date.now() - this.lastDraw));
    window.setTimeout(function () {
      window.requestAnimationFrame(function () {
        self.drawPending = false;
        self.lastDraw = Date.now();
        self.draw();
      });
    }, wait);
  };

  LiveMarket.prototype.barOf = function (c) {
    return { time: window.PriceChart.minuteTime(this.day, c.minute), open: c.o, high: c.h, low: c.l, close: c.c,
      volume: c.v };
  };

  LiveMarket.prototype.draw = function () {
    var empty = byId("intraday-empty");
    if (empty) { empty.hidden = this.candles.length > 0; }
    var box = byId("intraday-chart-box");
    if (box) { box.hidden = this.candles.length === 0; }  // no empty axes: the note says why
    if (!this.chart && this.candles.length) { this.chart = this.buildChart(); this.drawn = null; }
    if (!this.chart) { return; }
    var candles = this.candles, previous = this.previousClose || null;
    var drawn = this.drawn, self = this;
    if (drawn && drawn.version === this.version && drawn.previous === previous && drawn.count > 0) {
      // ticks moved the last candle and maybe began new ones: update just those bars
      for (var i = drawn.count - 1; i < candles.length; i++) {
        this.chart.update(this.barOf(candles[i]), { previous: previous });
      }
    } else {  // the first draw, a new day, stored candles, a late trade, a mark, the previous close: all of it
      this.chart.setData(candles.map(function (c) { return self.barOf(c); }),
        { previous: candles.map(function () { return previous; }) });
      var colors = { vi: VI, upper: UP, lower: DOWN };
      this.chart.setMarkers(this.marks.map(function (m) {
        return { time: window.PriceChart.minuteTime(self.day, m.minute), color: colors[m.kind],
          kind: m.kind === "lower" ? "down" : m.kind === "upper" ? "up" : "dot", text: m.kind === "vi" ? "VI" : "" };
      }));
    }
    this.drawn = { version: this.version, previous: previous, count: candles.length };
  };

  // ---------------------------------------------------------------------------------------- quote, 호가
  LiveMarket.prototype.showQuote = function (t) {
    var box = byId("live-quote");
    if (!box) { return; }
    box.hidden = false;
    var side = byId("live-side");
    if (side) { side.setAttribute("data-live", "on"); }  // the REST quote box steps aside (site.css)
    var line = byId("lq-price-line");
    line.classList.remove("up", "down");
    if (direction(t.chg)) { line.classList.add(direction(t.chg)); }
    setText("lq-price", won.format(t.p));
    setText("lq-change", signed(t.chg) + " (" + (t.rate > 0 ? "+" : "") + t.rate.toFixed(2) + "%)");
    setText("lq-open", won.format(t.o));
    setText("lq-high", won.format(t.h));
    setText("lq-low", won.format(t.l));
    setText("lq-previous", won.format(t.p - t.chg));
    setText("lq-volume", won.format(t.cv));
    if (this.limits.upper) { setText("lq-limits", won.format(this.limits.upper) + " / " + won.format(this.limits.lower)); }
    var flags = [];
    if (t.halted) { flags.push(this.labels.halted); }
    if (t.vi > 0) { flags.push(this.labels.vi); }
    if (this.atUpper) { flags.push(this.labels.upper_limit); }
    if (this.atLower) { flags.push(this.labels.lower_limit); }
    var flagNode = byId("lq-flags");
    flagNode.hidden = flags.length === 0;
    flagNode.textContent = flags.join(" · ");
    setText("lq-time", fill(this.labels.last_trade, { time: isoClock(t.t) }));
    var price = byId("lq-price");
    price.classList.remove("flash");
    void price.offsetWidth;  // restart the flash animation
    price.classList.add("flash");
  };

  LiveMarket.prototype.buildOrderBook = function () {
    var body = byId("order-book-rows");
    if (!body) { return; }
    this.bookRows = { asks: [], bids: [] };
    for (var i = 9; i >= 0; i--) { this.bookRows.asks[i] = this.bookRow(body, "ask"); }
    for (var j = 0; j < 10; j++) { this.bookRows.bids[j] = this.bookRow(body, "bid"); }
  };

  LiveMarket.prototype.bookRow = function (body, side) {
    var row = document.createElement("tr");
    row.className = "book-" + side;
    var cells = [document.createElement("td"), document.createElement("td"), document.createElement("td")];
    cells.forEach(function (cell) { cell.className = "num"; row.appendChild(cell); });
    var sizeCell = side === "ask" ? cells[0] : cells[2];
    var bar = document.createElement("span");
    bar.className = "book-bar";
    var size = document.createElement("span");
    size.className = "book-size";
    sizeCell.appendChild(bar);
    sizeCell.appendChild(size);
    cells[1].className = "num book-price";
    body.appendChild(row);
    return { row: row, price: cells[1], size: size, bar: bar };
  };

  LiveMarket.prototype.showBook = function (book) {
    if (!this.bookRows) { return; }
    byId("order-book").hidden = false;
    var most = Math.max.apply(null, book.ask_sizes.concat(book.bid_sizes).concat([1]));
    var last = this.lastTick ? this.lastTick.p : null;
    var previous = this.previousClose;
    function put(slot, price, size) {
      slot.price.textContent = price ? won.format(price) : "";
      slot.size.textContent = price ? won.format(size) : "";
      slot.bar.style.width = (price ? Math.round(size * 100 / most) : 0) + "%";
      slot.row.classList.toggle("book-last", !!price && price === last);
      slot.price.classList.remove("up", "down");
      if (price && previous) {
        var dir = direction(price - previous);
        if (dir) { slot.price.classList.add(dir); }
      }
    }
    for (var i = 0; i < 10; i++) {
      put(this.bookRows.asks[i], book.asks[i], book.ask_sizes[i]);
      put(this.bookRows.bids[i], book.bids[i], book.bid_sizes[i]);
    }
    setText("ob-total-ask", won.format(book.total_ask));
    setText("ob-total-bid", won.format(book.total_bid));
    setText("order-book-time", isoClock(book.t));
  };

  // ---------------------------------------------------------------------------------------- the daily chart
  LiveMarket.prototype.updateDaily = function () {
    // today's daily candle follows the trades: the tick carries the day's open, high, low and volume
    var t = this.lastTick;
    var charts = window.marketCharts;
    if (!t || !charts || !charts.price) { return; }
    var chart = charts.price;
    var day = t.t.substring(0, 10);
    var stored = chart.lastBar();
    var same = stored && stored.time === day ? stored : null;
    var open = t.o || (same ? same.open : t.p);
    chart.update({
      time: day, open: open, high: Math.max(t.h || t.p, t.p, open), low: Math.min(t.l || t.p, t.p, open),
      close: t.p, volume: t.cv,
    });
  };

  // ---------------------------------------------------------------------------------------- the stream
  LiveMarket.prototype.onTicks = function (message) {
    if (message.limits) {
      this.limits = { upper: message.limits.upper, lower: message.limits.lower };
      this.previousClose = message.limits.previous_close;
    }
    var ticks = message.ticks || [];
    for (var i = 0; i < ticks.length; i++) { this.applyTick(ticks[i]); }
    if (!ticks.length) { return; }
    this.lastTick = ticks[ticks.length - 1];
    this.lastTickAt = Date.now();
    this.showQuote(this.lastTick);
    this.updateDaily();
    this.scheduleDraw();
    this.renderStatus();
  };

  LiveMarket.prototype.onStatus = function (message) {
    if (message.state === "open" || message.state === "market_closed") {
      this.session = message.state;
    } else if (message.state === "gap") {
      this.gap = { since: isoClock(message.since), until: isoClock(message.until) };
      this.upstream = null;
    } else if (message.state === "connected") {
      this.upstream = null;
    } else {  // reconnecting / closed: the streamer's own link (KIS) is down
      this.upstream = message;
    }
    this.renderStatus();
  };

  LiveMarket.prototype.renderStatus = function () {
    var node = byId("live-status"), text = byId("live-status-text");
    if (!node || !text) { return; }
    var labels = this.labels, parts = [], state;
    if (this.unavailable !== null) {
      state = "unavailable";
      parts.push(fill(labels.unavailable, { reason: this.unavailable }));
      if (this.data.session === "open") { parts.push(labels.polling); }
    } else if (this.reconnectingSince) {
      state = "reconnecting";
      parts.push(fill(labels.reconnecting, { since: clock(this.reconnectingSince) }));
    } else if (this.upstream) {
      state = "reconnecting";
      parts.push(this.upstream.message || fill(labels.reconnecting, { since: isoClock(this.upstream.since) }));
    } else if (this.lastTick) {
      state = "live";
      parts.push(labels.live + " · " + fill(labels.last_trade, { time: isoClock(this.lastTick.t) }));
      var quiet = Date.now() - this.lastTickAt;
      if (quiet > STALE_MS) { parts.push(fill(labels.stale, { seconds: Math.round(quiet / 1000) })); }
    } else if (this.session === "market_closed") {
      state = "closed";
      parts.push(this.data.last_close ? fill(labels.market_closed, {
        price: won.format(this.data.last_close), date: this.data.last_close_date }) : labels.market_closed_no_close);
    } else if (this.open) {
      state = "waiting";
      parts.push(labels.waiting);
    } else {
      state = "connecting";
      parts.push(labels.connecting);
    }
    if (this.gap && state !== "unavailable") {
      parts.push(fill(labels.gap, { since: this.gap.since, until: this.gap.until }));
    }
    node.setAttribute("data-state", state);
    text.textContent = parts.join(" · ");
  };

  LiveMarket.prototype.connect = function () {
    var self = this;
    var source = new window.EventSource(this.data.stream_url);
    this.source = source;
    source.addEventListener("open", function () {
      if (self.reconnectingSince) {
        self.gap = { since: clock(self.reconnectingSince), until: clock(new Date()) };
        self.reconnectingSince = null;
      }
      self.open = true;
      self.renderStatus();
    });
    source.addEventListener("error", function () {
      self.open = false;
      if (source.readyState === window.EventSource.CLOSED) {
        self.probe();
      } else if (!self.reconnectingSince) {
        self.reconnectingSince = new Date();
      }
      self.renderStatus();
    });
    function on(name, handler) {
      source.addEventListener(name, function (event) { handler.call(self, JSON.parse(event.data)); });
    }
    on("ticks", this.onTicks);
    on("book", function (book) { this.showBook(book); });
    on("status", this.onStatus);
    on("bars", function (message) { this.replaceBars(message.bars || []); this.scheduleDraw(); });
    window.addEventListener("pagehide", function () { source.close(); });  // the server frees the slot now
  };

  LiveMarket.prototype.probe = function () {
    // The stream was refused or the server went away: ask why (the answer's body), then either try again
    // (the server is back) or say why and leave the quote to the 30-second polling.
    var self = this;
    var url = this.data.stream_url + "?probe=1";
    window.fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.json().then(function (body) {
          return { ok: response.ok && body.available !== false, detail: body.detail };
        });
      })
      .then(function (answer) {
        if (answer.ok) {
          self.reconnectingSince = self.reconnectingSince || new Date();
          window.setTimeout(function () { self.connect(); }, 3000);
        } else {
          self.unavailable = answer.detail || "";
          var side = byId("live-side");
          if (side) { side.removeAttribute("data-live"); }  // the REST quote box and its polling are back
        }
        self.renderStatus();
      })
      .catch(function () {
        self.reconnectingSince = self.reconnectingSince || new Date();
        window.setTimeout(function () { self.connect(); }, 5000);
        self.renderStatus();
      });
  };

  LiveMarket.prototype.pollingHeld = function () {
    // the stream carries the quote: while it is open (or reconnecting) in a session, no REST polling
    return this.unavailable === null && (this.open || this.reconnectingSince) && this.session === "open";
  };

  document.addEventListener("DOMContentLoaded", function () {
    var node = byId("live-data");
    if (!node || !window.EventSource) { return; }
    var live = new LiveMarket(JSON.parse(node.textContent));
    window.liveMarket = live;
    var quoteLoaded = false;
    document.body.addEventListener("htmx:beforeRequest", function (event) {
      var elt = event.detail && event.detail.elt;
      if (!elt || elt.id !== "quote-box") { return; }
      // Outside the session the price does not move: one quote on load, then no polling of the broker.
      if (live.pollingHeld() || (quoteLoaded && live.session === "market_closed")) { event.preventDefault(); }
      quoteLoaded = true;
    });
    window.setInterval(function () { live.renderStatus(); }, 5000);  // the "no trade for N s" note
    live.connect();
  });
})();
