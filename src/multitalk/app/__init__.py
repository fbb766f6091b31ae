"""The web page and HTTP API (`multitalk serve`)."""
