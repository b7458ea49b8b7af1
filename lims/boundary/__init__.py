"""The request boundary: what ties an HTTP request to the domain (sessions, cookies, CSRF)."""
