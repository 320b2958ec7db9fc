"""The web dashboard: server-rendered pages over the same store and library as the REST API.

``dashboard_router()`` returns the FastAPI router that serves the pages at ``/`` (overview),
``/customers``, ``/customers/{id}``, ``/model`` and ``/campaigns``, the sign-in page, the small
JSON endpoints the pages call, and the static assets (Plotly from the installed ``plotly``
package: nothing is fetched from a CDN). ``create_app`` includes it; see docs/dashboard.md.
"""

from churnguard.service.dashboard.router import dashboard_router

__all__ = ["dashboard_router"]
