// Admin, periodic task form (django-celery-beat): the crontab field's help shows the chosen schedule
// in words. django-celery-beat writes this inline; as a file it runs under the Content-Security-Policy.
(function ($) {
  "use strict";
  var script = document.getElementById("periodic-task-overrides");
  var readableCrontabs = JSON.parse(document.getElementById("readable-crontabs").textContent);
  var originalHelp = script.getAttribute("data-crontab-help");

  $(".field-crontab_translation").hide();
  $(".field-crontab").change(function () {
    var help = $(".field-crontab .help").empty();
    help.append(document.createTextNode(originalHelp), "<br>",
      document.createTextNode("Translation: " + readableCrontabs[$("#id_crontab").val()]));
  });
})(django.jQuery);
