"""http_flask.py — run_http.sh's Flask reference, served by gunicorn (one gthread worker):
GET / answers "Hello, World!", GET /json a small JSON object, as examples/http_hello does.

    gunicorn -w 1 -k gthread --threads 16 -b H:P --chdir bench/ref http_flask:app
"""
from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/")
def hello():
    return "Hello, World!"


@app.get("/json")
def json_():
    return jsonify(message="Hello, World!")
