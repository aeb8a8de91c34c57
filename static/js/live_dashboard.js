// 대시보드, live: the holdings' prices and P&L follow each trade, and an order event (a fill, a status
// change) shows a toast and refreshes 최근 주문 and the account cards at once (HTMX, from the page itself:
// the "rt-orders" event that #recent-orders listens for). One Server-Sent Events stream,
// /stream/dashboard/?watch=<account>:<codes> with the holdings this page shows (market/streaming/sse.py);
// the server answers which price source each account follows. The words come from #live-status's data-label-*.
(function () {
  "use strict";

  var TOAST_MS = 8000;

  var MAX_TOASTS = 4;
  var won = new Intl.NumberFormat("ko-KR");
  var seoulClock = new Intl.DateTimeFormat("en-GB", {
    timeZone: "Asia/Seoul", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  });

  function fill(template, values) {
    return (template || "").replace(/\{(\w+)\}/g, function (_, key) {
      return values[key] === undefined || values[key] === null ? "" : values[key];
    });
  }
  function isoClock(iso) { return iso ? iso.substring(11, 19) : ""; }
  function setDirection(node, n) {
    node.classList.remove("up", "down");
    if (n > 0) { node.classList.add("up"); } else if (n < 0) { node.classList.add("down"); }
  }

  function LiveDashboard(status) {
    this.status = status;
    this.text = document.getElementById("live-status-text");
    this.sources = {};  // account pk → "sim" | "kis"
    this.sessions = {};  // source → "open" | "market_closed"
    this.lastTick = null;
    this.open = false;
    this.unavailable = null;
    this.reconnectingSince = null;
    this.gap = null;
    this.watchKey = "";
    this.prices = {};  // "source:code" → the last trade's price
  }

  LiveDashboard.prototype.label = function (name) {
    return this.status.getAttribute("data-label-" + name) || "";
  };

  // What the page shows: {account pk: [codes]} from the holdings tables.
  LiveDashboard.prototype.watchList = function () {
    var watch = [];
    document.querySelectorAll(".account-card[data-account]").forEach(function (card) {
      var codes = [];
      card.querySelectorAll("tr[data-code]").forEach(function (row) {
        var code = row.getAttribute("data-code");
        if (codes.indexOf(code) < 0) { codes.push(code); }
      });
      if (codes.length) { watch.push(card.getAttribute("data-account") + ":" + codes.sort().join(",")); }
    });
    return watch;
  };

  LiveDashboard.prototype.url = function (extra) {
    var query = this.watchList().map(function (w) { return "watch=" + encodeURIComponent(w); });
    if (extra) { query.push(extra); }
    var base = this.status.getAttribute("data-stream-url");
    return query.length ? base + "?" + query.join("&") : base;
  };

  LiveDashboard.prototype.connect = function () {
    var self = this;
    if (this.source) { this.source.close(); }
    this.watchKey = this.watchList().join("&");
    this.open = false;
    var source = new window.EventSource(this.url());
    this.source = source;
    source.addEventListener("open", function () {
      if (self.reconnectingSince) {
        self.gap = { since: self.clock(self.reconnectingSince), until: self.clock(new Date()) };
        self.reconnectingSince = null;
        self.refreshOrders();  // order events of the gap were not seen: read them
      }
      self.open = true;
      self.render();
    });
    source.addEventListener("error", function () {
      if (source !== self.source) { return; }
      self.open = false;
      if (source.readyState === window.EventSource.CLOSED) {
        self.probe();
      } else if (!self.reconnectingSince) {
        self.reconnectingSince = new Date();
      }
      self.render();
    });
    function on(name, handler) {
      source.addEventListener(name, function (event) { handler.call(self, JSON.parse(event.data)); });
    }
    on("status", this.onStatus);
    on("ticks", this.onTicks);
    on("fill", this.onOrderEvent);
    on("order", this.onOrderEvent);
  };

  LiveDashboard.prototype.clock = function (date) { return seoulClock.format(date); };

  LiveDashboard.prototype.probe = function () {
    var self = this;
    window.fetch(this.url("probe=1"), { credentials: "same-origin", headers: { Accept: "application/json" } })
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
        }
        self.render();
      })
      .catch(function () {
        self.reconnectingSince = self.reconnectingSince || new Date();
        window.setTimeout(function () { self.connect(); }, 5000);
        self.render();
      });
  };

  LiveDashboard.prototype.onStatus = function (message) {
    (message.accounts || []).forEach(function (pk) { this.sources[pk] = message.source; }, this);
    if (message.state === "open" || message.state === "market_closed") {
      this.sessions[message.source] = message.state;
    } else if (message.state === "gap") {
      this.gap = { since: isoClock(message.since), until: isoClock(message.until) };
    }
    this.render();
  };

  LiveDashboard.prototype.onTicks = function (message) {
    var ticks = message.ticks || [];
    if (!ticks.length) { return; }
    var last = ticks[ticks.length - 1];
    this.lastTick = last;
    this.prices[message.source + ":" + message.code] = last.p;
    this.reprice(message.source, message.code);
    this.render();
  };

  // Put the live prices on the holdings rows (of one symbol, or all of them after the cards were re-read).
  LiveDashboard.prototype.reprice = function (onlySource, onlyCode) {
    document.querySelectorAll(".account-card[data-account]").forEach(function (card) {
      var source = this.sources[card.getAttribute("data-account")];
      if (!source || (onlySource && source !== onlySource)) { return; }
      var touched = false;
      card.querySelectorAll("tr[data-code]").forEach(function (row) {
        var code = row.getAttribute("data-code");
        var price = this.prices[source + ":" + code];
        if ((onlyCode && code !== onlyCode) || price === undefined) { return; }
        this.priceRow(row, price);
        touched = true;
      }, this);
      if (touched) { this.totals(card); }
    }, this);
  };

  LiveDashboard.prototype.priceRow = function (row, price) {
    var quantity = parseInt(row.getAttribute("data-quantity"), 10);
    var cost = parseInt(row.getAttribute("data-cost"), 10);
    var value = price * quantity;
    var pnl = value - cost;
    row.setAttribute("data-value", String(value));
    row.classList.add("holdings-live");
    var priceCell = row.querySelector('[data-live="price"]');
    priceCell.textContent = won.format(price);
    priceCell.classList.add("live-price");
    var tag = document.createElement("span");
    tag.className = "live-tag";
    tag.textContent = "●";
    tag.setAttribute("aria-hidden", "true");
    priceCell.appendChild(tag);
    row.querySelector('[data-live="value"]').textContent = won.format(value);
    var pnlCell = row.querySelector('[data-live="pnl"]');
    pnlCell.textContent = won.format(pnl) + " (" + (cost ? (pnl * 100 / cost).toFixed(1) : "0.0") + "%)";
    setDirection(pnlCell, pnl);
  };

  // An amount the page's way: "{amount}원" / "KRW {amount}" (data-label-amount), the sign in front.
  LiveDashboard.prototype.amount = function (value) {
    var pattern = this.label("amount") || "{amount}";
    return (value < 0 ? "-" : "") + pattern.replace("{amount}", won.format(Math.abs(value)));
  };

  LiveDashboard.prototype.totals = function (card) {
    var value = 0, pnl = 0, self = this;
    card.querySelectorAll("tr[data-code]").forEach(function (row) {
      var rowValue = row.getAttribute("data-value");
      if (rowValue === null) { return; }
      value += parseInt(rowValue, 10);
      pnl += parseInt(rowValue, 10) - parseInt(row.getAttribute("data-cost"), 10);
    });
    var securities = card.querySelector('[data-live="securities"]');
    if (securities) { securities.textContent = self.amount(value); }
    var header = card.querySelector('[data-live="price-header"]');
    if (header) { header.textContent = this.label("price-live"); }
    var securitiesLabel = card.querySelector('[data-live="securities-label"]');
    if (securitiesLabel) { securitiesLabel.textContent = this.label("securities-live"); }
    var pnlNode = card.querySelector('dd[data-live="pnl"]');
    if (pnlNode) { pnlNode.textContent = self.amount(pnl); setDirection(pnlNode, pnl); }
    var cash = card.getAttribute("data-cash");
    var total = card.querySelector('[data-live="account-value"]');
    if (total && cash !== null) { total.textContent = self.amount(parseInt(cash, 10) + value); }
  };

  LiveDashboard.prototype.onOrderEvent = function (event) {
    var side = this.label(event.side) || event.side;
    var title, text;
    if (event.type === "fill") {
      title = this.label("fill");
      text = fill(this.label("fill-text"), {
        code: event.code, side: side, quantity: won.format(event.fill_quantity || event.filled_quantity),
        price: event.price === null || event.price === undefined ? "–" : this.amount(event.price),
      });
    } else {
      title = this.label("order");
      text = fill(this.label("order-text"), {
        code: event.code, side: side, quantity: won.format(event.quantity),
        status: this.label("status-" + event.status) || event.status,
      });
    }
    // the server's own sentence (Korean, with more detail) on a Korean page, else the one made here
    var message = document.documentElement.lang === "ko" && event.message ? event.message : text;
    this.toast(title, message, event.type === "fill" ? "toast-fill toast-" + event.side : "toast-order");
    this.refreshOrders();
  };

  LiveDashboard.prototype.toast = function (title, text, kind) {
    var box = document.getElementById("toasts");
    if (!box) { return; }
    var toast = document.createElement("div");
    toast.className = "toast " + kind;
    toast.setAttribute("role", "status");
    var strong = document.createElement("strong");
    strong.textContent = title;
    toast.appendChild(strong);
    toast.appendChild(document.createTextNode(text));
    box.appendChild(toast);
    // A burst (the weekly entry's fills) shows its latest few, not a column down the page.
    while (box.children.length > MAX_TOASTS) { box.removeChild(box.firstElementChild); }
    window.setTimeout(function () {
      toast.classList.add("leaving");
      window.setTimeout(function () { toast.remove(); }, 500);
    }, TOAST_MS);
  };

  LiveDashboard.prototype.refreshOrders = function () {
    if (window.htmx) { window.htmx.trigger(document.body, "rt-orders"); }
  };

  LiveDashboard.prototype.render = function () {
    var parts = [], state;
    var sessions = Object.keys(this.sessions).map(function (s) { return this.sessions[s]; }, this);
    var closed = sessions.length > 0 && sessions.every(function (s) { return s === "market_closed"; });
    if (this.unavailable !== null) {
      state = "unavailable";
      parts.push(fill(this.label("unavailable"), { reason: this.unavailable }));
    } else if (this.reconnectingSince) {
      state = "reconnecting";
      parts.push(fill(this.label("reconnecting"), { since: this.clock(this.reconnectingSince) }));
    } else if (!this.open) {
      state = "connecting";
      parts.push(this.label("connecting"));
    } else if (closed && !this.lastTick) {
      state = "closed";
      parts.push(this.label("market-closed"));
    } else if (!this.watchKey) {
      state = "live";
      parts.push(this.label("no-holdings"));
    } else {
      state = this.lastTick ? "live" : "waiting";
      parts.push(this.label("live") + (this.lastTick ? " · " + fill(this.label("last-trade"), { time: isoClock(this.lastTick.t) }) : ""));
    }
    if (this.sessions.sim && state !== "unavailable") { parts.push(this.label("simulated")); }
    if (this.gap && state !== "unavailable") { parts.push(fill(this.label("gap"), this.gap)); }
    this.status.setAttribute("data-state", state);
    this.text.textContent = parts.join(" · ");
  };

  document.addEventListener("DOMContentLoaded", function () {
    var status = document.getElementById("live-status");
    if (!status || !window.EventSource || !status.getAttribute("data-stream-url")) { return; }
    var live = new LiveDashboard(status);
    window.liveDashboard = live;
    // The account cards came back from the server (after a fill): holdings may have changed.
    document.body.addEventListener("htmx:afterSettle", function () {
      live.reprice();
      if (live.watchList().join("&") !== live.watchKey) { live.connect(); }
    });
    window.addEventListener("pagehide", function () { if (live.source) { live.source.close(); } });
    live.render();
    live.connect();
  });
})();
