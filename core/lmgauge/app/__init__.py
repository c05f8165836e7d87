"""``lmgauge serve``: one live app for every run folder under the served folders.

=====================  ==========================================================================
``cli.py``             the ``serve`` command: folders, --host/--port/--token/--allow-host, start-up line
``server.py``          the aiohttp.web application: routes, JSON API, Server-Sent Events, the watcher
``security.py``        token (query → HttpOnly cookie), Host check (DNS rebinding), CSP and headers
``runs.py``            run discovery (recursive, incremental) and each run's state: status, progress
``journal.py``         an eval journal by byte offset: filters, pages, full-text search over the mmap
``live.py``            live scores of a running eval (build_results over per-question scores), pace
``views.py``           eval and comparison views as plain data (shared with the static report)
``analyticsviews.py``  reasoning analytics (lengths, budget curves) and sweep views, SVG (report too)
``perfviews.py``       perf views from the perf metric declarations, SVG charts (report.html too)
``render.py``          jinja2 environment, filters, the package's static files
``templates/``         page and section templates (autoescaped)
``static/``            app.js, app.css, favicon.svg: the page's only script and style (no CDN)
=====================  ==========================================================================

It reads run folders only through :mod:`lmgauge.runfolder` and never writes into them.
docs/app.md documents the pages and the API.
"""
