"""Session recordings: metadata, the live recording of a room, the offline compose job."""
