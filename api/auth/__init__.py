"""Authentication: password hashing, local RS256 tokens, Auth0 verification."""
