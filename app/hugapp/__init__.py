"""hugapp: the Hug Button companion (band link, family relay, pairing, store) and its UI."""
