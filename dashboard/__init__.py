"""The BILBO dashboard: a Flask app on 127.0.0.1:5555 reading the tick's SQLite database."""
