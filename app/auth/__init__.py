"""Bearer API tokens: creation, revocation and request authentication."""
