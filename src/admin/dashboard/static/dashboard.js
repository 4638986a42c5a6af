// partnergate dashboard: the only script (CSP: script-src 'self'). Everything works without
// it; it adds the "Copy" buttons beside keys that are shown once.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var field = document.getElementById(button.getAttribute("data-copy"));
    var status = document.getElementById(button.getAttribute("data-copy") + "-status");
    if (!field) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      field.focus();
      field.select();
      var done = function (ok) {
        if (status) {
          status.textContent = ok ? "Copied to the clipboard." : "Copying failed: the key is selected, press Ctrl+C (⌘C).";
        }
        button.textContent = ok ? "Copied" : "Copy";
      };
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(field.value).then(function () { done(true); }, function () {
          done(document.execCommand && document.execCommand("copy"));
        });
      } else {
        done(document.execCommand && document.execCommand("copy"));
      }
    });
  });
});
