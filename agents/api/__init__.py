"""The REST resources of the agents app (DRF views): the knowledge base."""
