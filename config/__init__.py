"""Settings from environment variables and .ini files, and the logging set-up."""
