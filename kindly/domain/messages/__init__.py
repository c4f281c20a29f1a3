"""Messages: rendering templates into SMS bodies, and the content check every body passes."""
