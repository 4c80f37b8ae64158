// Swagger UI from files served by inboxd itself: works offline and under the same
// Content-Security-Policy as the dashboard (no inline script, no CDN).
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  // The session cookie already authenticates "Try it out" from a logged-in browser.
  withCredentials: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
