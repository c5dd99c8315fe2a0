"""raftkv package."""
