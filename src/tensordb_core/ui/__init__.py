"""The read-only web UI (``tensordb ui``): studies, runs and learning curves, models, jobs and workers, data.

``app`` builds the Starlette application (routes, token, time limits, error
pages), ``api`` answers the JSON endpoints every page is drawn from,
``samples`` pages through data with thumbnails from ``thumbnails``, and
``static/`` holds the plain HTML/JS/CSS with the vendored chart library.
Nothing here writes to the warehouse.
"""
