// pydata-sphinx-theme 0.17 and sphinx-book-theme 1.3 both bind their sidebar handlers to the FIRST
// `.primary-toggle` / `.secondary-toggle` on the page (the theme header's, which the book theme hides),
// so the visible button in the article header does nothing. Forward its clicks to the bound one.
document.addEventListener("DOMContentLoaded", () => {
  for (const selector of [".primary-toggle", ".secondary-toggle"]) {
    const [bound, ...others] = document.querySelectorAll(selector);
    for (const button of others) {
      button.addEventListener("click", (event) => {
        event.preventDefault();
        event.stopImmediatePropagation();
        bound.click();
      }, true);
    }
  }
});
