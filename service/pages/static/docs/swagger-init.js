/* Starts Swagger UI on /openapi.json (a file of its own: the page has no inline script). */
window.addEventListener("DOMContentLoaded", function () {
  "use strict";
  window.ui = window.SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
    tryItOutEnabled: true, displayRequestDuration: true});
});
