// On a phone, a table of three or more columns is laid out one block per row, each cell under its
// column's name (css/site.css, max-width 600px): this names each cell after its column's heading.
document.querySelectorAll(".rst-content table").forEach((table) => {
  const names = [...table.querySelectorAll("thead th")].map((heading) => heading.textContent.trim());
  if (names.length < 3) return; // two columns fit a phone side by side
  table.classList.add("stacks");
  table.querySelectorAll("tbody tr").forEach((row) => {
    [...row.cells].forEach((cell, column) => {
      cell.dataset.column = names[column] || "";
    });
  });
});
