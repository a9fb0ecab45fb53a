"""The aggregator's JSON REST API (Falcon): `create_app` in app.py wires resources, errors and CORS."""
