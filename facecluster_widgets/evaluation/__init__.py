"""The method against its peers: protocols and Table-2-style reports (``evaluate``), the stress protocol."""
