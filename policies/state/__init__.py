"""State the policies share between gateway instances: the Redis connections behind the backends."""
