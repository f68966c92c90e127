// Response time runs from the moment every stimulus image is painted to the submit, and
// the answer form cannot be sent before the images are there.
(function () {
  "use strict";
  const form = document.getElementById("trial-form");
  if (!form) return;
  const images = Array.from(document.querySelectorAll(".stimulus-image"));
  const submit = form.querySelector("button[type=submit]");
  let paintedAt = null;
  let sent = false;

  submit.disabled = true;
  const loaded = images.map((img) => (img.complete && img.naturalWidth > 0)
    ? Promise.resolve()
    : new Promise((resolve) => {
        img.addEventListener("load", resolve, { once: true });
        img.addEventListener("error", resolve, { once: true });
      }));
  Promise.all(loaded).then(() => {
    // Two animation frames: the first is scheduled before paint, the second after it.
    requestAnimationFrame(() => requestAnimationFrame(() => {
      paintedAt = performance.now();
      submit.disabled = false;
      form.dataset.painted = "true";
    }));
  });

  // What the participant did with the explanation and the gallery, in ms from paint.
  const interactions = [];
  const record = (event) => {
    if (paintedAt !== null) interactions.push({ event, ms: Math.round(performance.now() - paintedAt) });
  };
  const toggle = document.getElementById("heatmap-toggle");
  if (toggle) {
    const heatmap = document.querySelector(".stimulus-image.heatmap");
    toggle.addEventListener("click", () => {
      const hidden = heatmap.style.visibility !== "hidden";
      heatmap.style.visibility = hidden ? "hidden" : "visible";
      toggle.textContent = hidden ? "Show the heatmap" : "Hide the heatmap";
      toggle.setAttribute("aria-pressed", String(hidden));
      record(hidden ? "heatmap_hidden" : "heatmap_shown");
    });
  }
  const gallery = document.querySelector(".gallery-toggle");
  if (gallery) {
    gallery.addEventListener("toggle", () => record(gallery.open ? "gallery_opened" : "gallery_closed"));
  }

  form.addEventListener("submit", (event) => {
    if (sent || paintedAt === null) { event.preventDefault(); return; }
    sent = true;
    form.elements.client_response_ms.value = Math.round(performance.now() - paintedAt);
    form.elements.viewport.value = window.innerWidth + "x" + window.innerHeight;
    form.elements.interactions.value = JSON.stringify(interactions);
    submit.disabled = true;
  });
})();
