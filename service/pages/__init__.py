"""Pages people use, served by the service itself: the cart widget's files and the demo shop.

Templates live in `service/pages/templates`, static files in `service/pages/static`; nothing is
built and nothing comes from a CDN. Every page is sent with a strict Content-Security-Policy (no
inline script), so what works here works on a shop with the same policy.
"""
