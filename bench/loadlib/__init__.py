"""bench/load.py's parts: the loopback provider, the profiler inside the server, the app's
processes, the people and their tabs, the measurements and the report."""
