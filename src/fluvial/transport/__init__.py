"""asyncio transport: framed connections, server loop, client multiplexer."""
