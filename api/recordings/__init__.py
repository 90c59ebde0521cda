"""Session recordings: the live recording of a room, the offline compose job, crash recovery,
and the rules around them (``service``). The stored records are in ``api.models``."""
