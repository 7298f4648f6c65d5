"""Real loopback servers standing in for the services Conduet calls out to (an HTTP tool endpoint, …)."""
