"""Real-server tests: the app under gunicorn and waitress, as subprocesses on 127.0.0.1."""
