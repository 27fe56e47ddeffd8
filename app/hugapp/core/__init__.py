"""The companion's core: band link, family relay, pairing, store, router. No Kivy in here."""
