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
  const lose = document.getElementById("lose-connectivity");
  const csrfToken = () => form.querySelector("[name=csrfmiddlewaretoken]").value;
  const scene = { run: 0, playing: new Set() }; // a new press makes the answers of an older run stale
  const phones = Array.from(root.querySelectorAll(".phone[data-phone]"),
    (panel) => phoneFor(panel, { root, form, lose, csrfToken, scene }));

  // Switching the tunnel back on lets both phones drive into a new stretch of it.
  lose.addEventListener("change", () => { if (lose.checked) phones.forEach((phone) => phone.enterTunnel()); });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    play(phones, { root, csrfToken, scene });
  });
  phones.forEach((phone) => phone.newIntent(payload(root)));
}

function payload(root) {
  return { items: [{ cake: root.dataset.cake, quantity: 1 }], note: "" };
}

function refresh(event) {
  if (window.htmx) window.htmx.trigger(document.body, event);
}

// One phone panel: its own customer (X-Bakery-Phone), the shared tunnel, and the scene told when it is over.
function phoneFor(panel, { root, form, lose, csrfToken, scene }) {
  const name = panel.dataset.phone;
  const $ = (selector) => panel.querySelector(selector);
  const box = $(".status-box");
  const checked = (field, fallback) => (form.querySelector(`input[name=${field}]:checked`) || {}).value || fallback;
  const over = () => {
    scene.playing.delete(name);
    if (scene.playing.size === 0) finished(root, scene, scene.run);
  };
  const phone = new Phone(configFrom(root), {
    csrfToken,
    headers: { "X-Bakery-Phone": name },
    tunnel: () => ({ on: lose.checked, mode: checked("tunnel-mode", "response-lost"), length: checked("tunnel-length", "1") }),
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
}

function contrast(html) {
  const current = document.getElementById("contrast");
  const template = document.createElement("template");
  template.innerHTML = html.trim();
  const fresh = template.content.firstElementChild;
  current.replaceWith(fresh);
  return fresh;
}

async function finished(root, scene, which) {
  document.getElementById("play").disabled = false;
  refresh("bakery:changed");
  // The phones are done; the back office may still be charging and invoicing. Ask until it settles.
  while (which === scene.run) {
    const response = await fetch(root.dataset.contrastUrl, { credentials: "same-origin" });
    if (which !== scene.run) return;
    if (response.ok && contrast(await response.text()).dataset.settled === "true") return;
    await new Promise((resolve) => { setTimeout(resolve, 1000); });
  }
}

// "Play": empty both bakeries, then send both phones into the tunnel with a new key each.
async function play(phones, { root, csrfToken, scene }) {
  const button = document.getElementById("play");
  scene.run += 1;
  button.disabled = true;
  phones.forEach((phone) => phone.clearSchedule());
  contrast('<div id="contrast" class="contrast" role="status" data-settled="false">'
    + '<p class="contrast-said">Both phones are in the tunnel…</p></div>');
  const response = await fetch(root.dataset.startUrl, {
    method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrfToken() },
  });
  if (!response.ok) {
    button.disabled = false;
    contrast(`<div id="contrast" class="contrast" role="status" data-settled="false"><p class="contrast-said">`
      + `The bakery could not start the scene (${response.status}). Reload the page and try again.</p></div>`);
    return;
  }
  refresh("bakery:reset");
  scene.playing = new Set(phones.map((phone) => phone.name));
  phones.forEach((phone) => { phone.newIntent(payload(root)); phone.place(); });
}
