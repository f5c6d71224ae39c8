"""`launch ui`: the console (pages) and the API (RunPod's REST v2 secrets routes, plus templates and jobs), one
server over `launcher.app`. Imported only by `launch ui` (FastAPI, Starlette, uvicorn and Jinja2 load here, never
for another command).

- `security`: the ASGI layer every request passes first: Host and Origin checks, the token or its session cookie,
  CSRF on state-changing browser requests, a body size bound, no-store and a Content-Security-Policy.
- `api`: JSON routes under /v2, errors as application/problem+json.
- `pages`: server-rendered pages (Jinja2) with a little plain JS (static/app.js); no asset from elsewhere.
- `server`: builds the app, binds 127.0.0.1, writes ui.json (0600) while it runs.
"""
