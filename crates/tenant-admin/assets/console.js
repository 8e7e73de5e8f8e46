// scimgate console: the only script besides htmx. No inline script exists
// anywhere (the content security policy forbids it), so behaviour that
// needs JavaScript hangs off data attributes here.
"use strict";

// Copy buttons: <button data-copy="element-id">. The secret stays in the
// page (it is shown once); the button only saves selecting it by hand.
document.addEventListener("click", function (event) {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source) return;
  const text = source.textContent.trim();
  const done = function () {
    button.textContent = "Copied";
    button.setAttribute("aria-live", "polite");
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, function () {
      selectText(source);
      button.textContent = "Press Ctrl+C to copy";
    });
  } else {
    selectText(source);
    button.textContent = "Press Ctrl+C to copy";
  }
});

function selectText(element) {
  const range = document.createRange();
  range.selectNodeContents(element);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
}

// After htmx swaps the whole page (hx-boost), move focus to the main
// content so keyboard and screen-reader users start at the new page.
document.addEventListener("htmx:afterSettle", function (event) {
  if (event.detail && event.detail.boosted) {
    const main = document.getElementById("main");
    if (main) main.focus({ preventScroll: true });
  }
});
