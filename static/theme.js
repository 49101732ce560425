// Loaded in <head> without defer so the chosen theme applies before the first paint.
(function () {
  try {
    var theme = localStorage.getItem("hubkeeper-theme");
    if (theme === "light" || theme === "dark") {
      document.documentElement.setAttribute("data-theme", theme);
    }
  } catch (e) {
    /* storage may be blocked; the system preference still applies */
  }
})();
