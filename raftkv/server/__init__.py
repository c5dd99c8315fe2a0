"""raftkv/server package."""
