"""Users, project roles, API keys and login tokens: who may do what, for the REST API and the CLI."""
