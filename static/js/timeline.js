// A timeline's folded attempts (<details class="fold">) open on click without any script. htmx swaps
// in a fresh copy of the timeline every 2 s; this keeps the groups the reader opened open.
const opened = new Set();

document.addEventListener("toggle", (event) => {
  const fold = event.target;
  if (!(fold instanceof HTMLDetailsElement) || !fold.classList.contains("fold")) return;
  if (fold.open) opened.add(fold.id); else opened.delete(fold.id);
}, true); // toggle does not bubble

function reopen() {
  opened.forEach((id) => {
    const fold = document.getElementById(id);
    if (fold && !fold.open) fold.open = true;
  });
}
document.addEventListener("htmx:afterSwap", reopen);
document.addEventListener("htmx:load", reopen);
