"""The service: the read path over the layers, the venues, tracked symbols, admin jobs."""
