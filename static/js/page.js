// Small page behaviours, kept out of the HTML so the Content-Security-Policy can forbid inline script:
// <form data-confirm="Sure?"> asks before it submits; <button data-print> prints the page.
document.addEventListener("submit", (event) => {
  const message = event.target.dataset ? event.target.dataset.confirm : undefined;
  if (message && !window.confirm(message)) event.preventDefault();
});
document.addEventListener("click", (event) => {
  if (event.target.closest && event.target.closest("[data-print]")) window.print();
});
