"""fluvial's own client library (asyncio first)."""
