"""Real-time market data from the streaming process to the browser (issue 13).

``events``: channel names and message shapes (the contract between the streamer, the orders app and the
SSE endpoint); ``bus``: publish/subscribe between processes (Redis pub/sub, or a local bus on one machine
without Redis); the streamer, the paper tick simulator and the SSE view build on them.
"""
