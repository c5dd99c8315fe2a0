"""raftkv/sim package."""
