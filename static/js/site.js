// Behaviour every page shares, kept out of the templates so the Content-Security-Policy needs no
// inline script or event handler:
// - the language selector in the top bar submits its form when a language is picked;
// - a form with data-confirm="…" asks first and is sent only when the user agrees.
(function () {
  "use strict";

  document.addEventListener("change", function (event) {
    var select = event.target;
    if (select.matches && select.matches("select[data-autosubmit]") && select.form) {
      select.form.submit();
    }
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });
})();
