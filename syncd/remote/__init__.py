"""What talks to other systems on an adapter's behalf: HTTP clients, rate limits, retries."""
