// Behaviour that the pages' markup asks for with data- attributes: the Content-Security-Policy
// allows scripts from this site only, so no handler is written inline.
document.addEventListener("change", (event) => {
  const field = event.target;
  if (field instanceof HTMLSelectElement && field.dataset.submitOnChange !== undefined && field.form) {
    field.form.submit();
  }
});
