// The compare page: the same tunnel scene on two phones at once (phone.js), one button for both.
//
// Each phone speaks for its own customer with the X-Bakery-Phone header; the server keeps both
// customers in this browser's session. When both phones are done, the page asks the server for the
// ending, computed from the real counts once the back office has settled.
import { Phone, attemptItems, configFrom } from "./phone.js";

const root = document.getElementById("compare");
if (root) start(root);

function start(root) {
  const form = document.getElementById("compare-form");
  const play = document.getElementById("play");
  const lose = document.getElementById("lose-connectivity");
  const csrfToken = () => form.querySelector("[name=csrfmiddlewaretoken]").value;
  const checked = (name, fallback) => (form.querySelector(`input[name=${name}]:checked`) || {}).value || fallback;
  const tunnel = () => ({ on: lose.checked, mode: checked("tunnel-mode", "response-lost"), length: checked("tunnel-length", "1") });
  const payload = () => ({ items: [{ cake: root.dataset.cake, quantity: 1 }], note: "" });
  const refresh = (event) => { if (window.htmx) window.htmx.trigger(document.body, event); };

  let run = 0; // a new press makes the answers of an older run stale
  let playing = new Set();

  const phones = Array.from(root.querySelectorAll(".phone[data-phone]"), (panel) => {
    const name = panel.dataset.phone;
    const $ = (selector) => panel.querySelector(selector);
    const box = $(".status-box");
    const over = () => {
      playing.delete(name);
      if (playing.size === 0) finished(run);
    };
    const phone = new Phone(configFrom(root), {
      csrfToken,
      headers: { "X-Bakery-Phone": name },
      tunnel,
      autoRetry: () => true,
      view: {
        say: (text, tone = "") => { $(".phone-status").textContent = text; box.dataset.tone = tone; },
        attempts: (list) => $(".attempts").replaceChildren(...attemptItems(list)),
        key: (key) => { $(".phone-key").textContent = `${key.slice(0, 8)}…`; $(".phone-key").title = key; },
        countdown: (text) => {
          $(".countdown").hidden = text === null;
          if (text !== null) $(".countdown").textContent = text;
        },
        confirmed: over,
        refused: over,
        gaveUp: over,
        changed: () => refresh("bakery:changed"),
      },
    });
    phone.name = name;
    return phone;
  });

  // Switching the tunnel back on lets both phones drive into a new stretch of it.
  lose.addEventListener("change", () => { if (lose.checked) phones.forEach((phone) => phone.enterTunnel()); });

  function contrast(html) {
    const current = document.getElementById("contrast");
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    const fresh = template.content.firstElementChild;
    current.replaceWith(fresh);
    return fresh;
  }

  async function finished(which) {
    play.disabled = false;
    refresh("bakery:changed");
    // The phones are done; the back office may still be charging and invoicing. Ask until it settles.
    while (which === run) {
      const response = await fetch(root.dataset.contrastUrl, { credentials: "same-origin" });
      if (which !== run) return;
      if (response.ok && contrast(await response.text()).dataset.settled === "true") return;
      await new Promise((resolve) => { setTimeout(resolve, 1000); });
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    run += 1;
    play.disabled = true;
    phones.forEach((phone) => phone.clearSchedule());
    contrast('<div id="contrast" class="contrast" role="status" data-settled="false">'
      + '<p class="contrast-said">Both phones are in the tunnel…</p></div>');
    const response = await fetch(root.dataset.startUrl, {
      method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrfToken() },
    });
    if (!response.ok) {
      play.disabled = false;
      contrast(`<div id="contrast" class="contrast" role="status" data-settled="false"><p class="contrast-said">`
        + `The bakery could not start the scene (${response.status}). Reload the page and try again.</p></div>`);
      return;
    }
    refresh("bakery:reset");
    playing = new Set(phones.map((phone) => phone.name));
    phones.forEach((phone) => { phone.newIntent(payload()); phone.place(); });
  });

  phones.forEach((phone) => phone.newIntent(payload()));
}
