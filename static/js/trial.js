// Response time runs from the moment every stimulus image is painted to the submit. The
// Next button comes disabled in the HTML and is enabled here once the stimuli are painted,
// or once one has failed to load (with a message and a retry beside it) or is still not
// there after STIMULUS_WAIT_MS: the participant is never stuck, and an answer given while
// a stimulus is not shown says so (stimulus_missing), for the export to flag.
(function () {
  "use strict";
  const form = document.getElementById("trial-form");
  if (!form) return;
  const STIMULUS_WAIT_MS = 15000;
  const images = Array.from(document.querySelectorAll(".stimulus-image"));
  const submit = form.querySelector("button[type=submit]");
  let paintedAt = null;
  let sent = false;

  const shown = (img) => img.complete && img.naturalWidth > 0;

  const ready = () => {
    if (paintedAt !== null) return;
    // Two animation frames: the first is scheduled before paint, the second after it.
    requestAnimationFrame(() => requestAnimationFrame(() => {
      if (paintedAt !== null) return;
      paintedAt = performance.now();
      submit.disabled = false;
      form.dataset.painted = "true";
    }));
  };

  const showFailure = (img) => {
    const figure = img.closest("figure") || img.parentElement;
    if (figure.querySelector(".stimulus-failed")) return;
    const notice = document.createElement("div");
    notice.className = "stimulus-failed error";
    notice.setAttribute("role", "alert");
    const text = document.createElement("p");
    text.textContent = "This picture did not load. Check your connection and try again; "
      + "if it still does not appear, you can answer without it.";
    const retry = document.createElement("button");
    retry.type = "button";
    retry.className = "retry-button";
    retry.textContent = "Try again";
    let attempt = 0;
    retry.addEventListener("click", () => {
      attempt += 1;
      const url = new URL(img.getAttribute("src"), window.location.href);
      url.searchParams.set("retry", String(attempt));
      img.src = url.toString();
    });
    notice.append(text, retry);
    figure.append(notice);
    form.dataset.stimulusFailed = "true";
  };

  images.forEach((img) => {
    img.addEventListener("error", () => { showFailure(img); ready(); });
    img.addEventListener("load", () => {
      const notice = (img.closest("figure") || img.parentElement).querySelector(".stimulus-failed");
      if (notice) notice.remove();
    });
    // An image that failed before this script ran has no error event left to fire.
    if (img.complete && img.naturalWidth === 0) { showFailure(img); ready(); }
  });
  const loaded = images.map((img) => shown(img)
    ? Promise.resolve()
    : new Promise((resolve) => img.addEventListener("load", resolve, { once: true })));
  Promise.all(loaded).then(ready);
  window.setTimeout(ready, STIMULUS_WAIT_MS);

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
    form.elements.stimulus_missing.value = images.every(shown) ? "0" : "1";
    form.elements.viewport.value = window.innerWidth + "x" + window.innerHeight;
    form.elements.interactions.value = JSON.stringify(interactions);
    submit.disabled = true;
  });
})();
