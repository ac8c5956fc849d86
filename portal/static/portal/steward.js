// Behaviour that the pages' markup asks for with data- attributes: the Content-Security-Policy
// allows scripts from this site only, so no handler is written inline.
document.addEventListener("change", (event) => {
  const field = event.target;
  if (field instanceof HTMLSelectElement && field.dataset.submitOnChange !== undefined && field.form) {
    field.form.submit();
  }
});

// The top bar's menu on small screens: without this script the links simply wrap.
document.addEventListener("DOMContentLoaded", () => {
  const button = document.querySelector("[data-menu-button]");
  const bar = button && button.closest(".topbar");
  if (!button || !bar) return;
  button.hidden = false;
  bar.classList.add("js-menu");
  button.addEventListener("click", () => {
    const open = bar.classList.toggle("open");
    button.setAttribute("aria-expanded", String(open));
  });
});
