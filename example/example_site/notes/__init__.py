"""Notes: the site's one model, edited in the admin and listed on the home page."""
