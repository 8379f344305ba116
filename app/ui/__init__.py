"""The web dashboard: static files (static/) served at /ui by `router.install_dashboard`."""
