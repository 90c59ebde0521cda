"""Class sockets across the nodes of a cluster: a socket's room events relayed to the node
that holds its room, and that room's answers relayed back (docs/deploy.md, "A cluster")."""
