"""raftkv/core package."""
