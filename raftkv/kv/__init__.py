"""raftkv/kv package."""
