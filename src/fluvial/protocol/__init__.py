"""Fluvio wire protocol. Pure: no sockets, no files, no asyncio."""
