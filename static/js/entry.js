// The study's entry: only a browser that runs this script comes back with js=1 and is
// admitted (the server takes no place for one that does not).
(function () {
  "use strict";
  const url = new URL(window.location.href);
  url.searchParams.set("js", "1");
  window.location.replace(url.toString());
})();
