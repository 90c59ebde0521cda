"""Cluster mode (``REDIS_URL``): nodes registered in Redis, rooms placed on them by load,
as LiveKit does (docs/deploy.md, "A cluster")."""
