// Re-renders every element with a data-live URL from the server every data-every seconds (same origin:
// the browser sends the basic-auth credentials again), so a page follows the farm without a reload.
// data-updated records the last refresh (the browser test waits for it).
for (const el of document.querySelectorAll("[data-live]")) {
  const every = (parseFloat(el.dataset.every) || 3) * 1000;
  const tick = async () => {
    try {
      const response = await fetch(el.dataset.live, { cache: "no-store" });
      if (response.ok) {
        el.innerHTML = await response.text();
        el.dataset.updated = new Date().toISOString();
      }
    } catch (error) {
      el.dataset.error = String(error);
    }
    setTimeout(tick, every);
  };
  setTimeout(tick, every);
}
