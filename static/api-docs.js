// Starts Swagger UI on the API docs page (a file, not an inline script: the CSP forbids those).
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    domNode: root,
    deepLinking: true,
    validatorUrl: null, // never call out to validator.swagger.io
    presets: [window.SwaggerUIBundle.presets.apis],
  });
})();
