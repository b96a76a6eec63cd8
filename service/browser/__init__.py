"""Browser callers: CORS for ALLOWED_ORIGINS, publishable keys, and the widget's client tokens.

`origins` answers preflights and adds the CORS headers; `keys` decides what a key may do when a
browser (an `Origin` header) sends it; `client_token` signs and checks the short-lived token a
shop's backend makes so that its widget may name a known client.
"""
