// Figures are drawn for a wide screen; clicking one shows it at the full size of the window (click again or
// press Escape to go back), so its tick labels and legends can be read on any screen.
document.addEventListener("DOMContentLoaded", () => {
  const figures = document.querySelectorAll("article .cell_output img, article figure img");
  const closeAll = () => document.querySelectorAll("img.zoomed").forEach((img) => img.classList.remove("zoomed"));
  for (const img of figures) {
    img.classList.add("zoomable");
    img.setAttribute("title", "Click to enlarge");
    img.addEventListener("click", () => {
      const open = img.classList.contains("zoomed");
      closeAll();
      if (!open) img.classList.add("zoomed");
    });
  }
  document.addEventListener("keydown", (event) => { if (event.key === "Escape") closeAll(); });
});
