"""Fake remotes: real aiohttp servers, one module each."""
