// 종목 검색: keyboard navigation over the live (HTMX) results of the search box.
// ↓/↑ move through the results, Enter opens the selected one (or the first), Escape clears the
// selection. When the results on screen are not those of the text in the box yet (typing faster than
// the 200 ms debounce), Enter submits the form and the server answers with the right results page.
(function () {
  "use strict";

  function init(form) {
    var input = form.querySelector("input[type=search]");
    var container = document.getElementById("search-results");
    if (!input || !container) return;
    var active = -1;

    function listbox() { return container.querySelector("#search-listbox"); }
    function options() { return Array.prototype.slice.call(container.querySelectorAll("[role=option]")); }
    function current() {
      var box = listbox();
      return box && box.getAttribute("data-query") === input.value.trim();
    }

    function select(index) {
      var opts = options();
      if (!opts.length) { reset(); return; }
      active = (index + opts.length) % opts.length;
      opts.forEach(function (option, i) {
        var on = i === active;
        option.classList.toggle("active", on);
        option.setAttribute("aria-selected", on ? "true" : "false");
      });
      input.setAttribute("aria-activedescendant", opts[active].id);
      opts[active].scrollIntoView({ block: "nearest" });
    }

    function reset() {
      active = -1;
      input.removeAttribute("aria-activedescendant");
      options().forEach(function (option) {
        option.classList.remove("active");
        option.setAttribute("aria-selected", "false");
      });
      input.setAttribute("aria-expanded", options().length ? "true" : "false");
    }

    input.addEventListener("keydown", function (event) {
      if (event.isComposing) return; // a Hangul syllable is still being composed
      if (event.key === "ArrowDown") {
        event.preventDefault();
        select(active + 1);
      } else if (event.key === "ArrowUp") {
        event.preventDefault();
        select(active < 0 ? -1 : active - 1);
      } else if (event.key === "Escape") {
        reset();
      } else if (event.key === "Enter") {
        var opts = options();
        if (!opts.length || !current()) return; // let the form submit
        event.preventDefault();
        var link = opts[active >= 0 ? active : 0].querySelector("a");
        if (link) window.location.assign(link.href);
      }
    });

    document.body.addEventListener("htmx:afterSwap", function (event) {
      if (event.detail && event.detail.target === container) reset();
    });
    reset();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-instrument-search]").forEach(init);
  });
})();
