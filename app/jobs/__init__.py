"""Long actions that outlive a request (stop-all, a lockdown's stops), kept in the database
so every replica can follow them."""
