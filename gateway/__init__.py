"""The govgate gateway: Litestar app, routing table, upstream client, CLI."""
