"""Live class rooms: who has joined each active session, and their media in ``sfu``."""
