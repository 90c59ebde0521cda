"""REST routes, one module per resource; ``setup_routes`` registers them all."""
