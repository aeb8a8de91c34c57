"""KIS real-time data over the WebSocket (fact sheet §2.3 and §6). Pure Python, no Django.

``records``: the typed records (trade ticks, 호가, fill notices) and their field tables; ``frames``: text
frames in and out (control answers, data frames, AES for fill notices); ``session``: one WebSocket session
per app key with PINGPONG, reconnects and re-registration; ``subscriptions``: who watches what on a session,
within KIS's 40 registrations.
"""
